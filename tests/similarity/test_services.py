"""The descriptor job after a training, its survival of a broken image, the index kept current as
images come and go, and a new version's descriptors replacing the old version's."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.images.services import training_image_ingest
from apps.similarity import cache, jobs, services
from apps.similarity.models import Descriptor, DescriptorRun
from apps.training import artifacts
from apps.training.models import ModelVersion
from apps.training.services import model_version_finish
from tests.suggestions.conftest import BLUE, GREEN, RED, deploy, solid

pytestmark = pytest.mark.django_db


def _images(workspace, colours, seed=0):
    rng = np.random.default_rng(seed)
    return [training_image_ingest(workspace=workspace, data=solid(colour, rng)) for colour in colours]


def _run(task) -> DescriptorRun:
    run = DescriptorRun.objects.create(
        workspace=task.workspace, task=task, version=task.versions.get(version=task.production_version)
    )
    jobs.describe_images(str(run.pk))
    run.refresh_from_db()
    return run


def test_a_deployed_training_describes_every_image_of_the_workspace(
    workspace, colour_task, colour_model, django_capture_on_commit_callbacks
):
    task = colour_task(trained=False)
    _images(workspace, [RED, GREEN, BLUE])
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status=ModelVersion.Status.IN_TRAINING
    )
    path = artifacts.save_artifacts(version, colour_model)
    with django_capture_on_commit_callbacks(execute=True):
        model_version_finish(
            version_id=version.pk, metrics={}, warnings=[], evaluation=[], artifact_path=path
        )
    run = DescriptorRun.objects.get(task=task)
    assert (run.status, run.version_id, run.done, run.total, run.progress) == (
        "DONE",
        version.pk,
        3,
        3,
        100.0,
    )
    assert Descriptor.objects.filter(version=version).count() == 3


def test_an_image_whose_file_is_gone_is_skipped_and_the_rest_described(workspace, colour_task):
    task = colour_task()
    gone, *kept = _images(workspace, [RED, GREEN, BLUE])
    default_storage.delete(gone.file)
    run = _run(task)
    assert run.status == "DONE" and (run.done, run.total) == (2, 3)
    assert set(Descriptor.objects.values_list("image_id", flat=True)) == {image.pk for image in kept}


def test_a_run_whose_model_cannot_load_fails_with_the_reason(workspace, colour_task):
    task = colour_task()
    _images(workspace, [RED])
    ModelVersion.objects.filter(task=task).update(artifact_path="nowhere/")
    run = _run(task)
    assert run.status == "FAILED" and run.error
    assert not Descriptor.objects.exists()


def test_running_a_finished_run_again_changes_nothing(workspace, colour_task):
    task = colour_task()
    _images(workspace, [RED, GREEN])
    run = _run(task)
    rows = list(Descriptor.objects.values_list("id", flat=True))
    jobs.describe_images(str(run.pk))
    assert list(Descriptor.objects.values_list("id", flat=True)) == rows


def test_the_index_follows_uploads_and_deletions(workspace, colour_task):
    task = colour_task()
    red1, red2, green = _images(workspace, [RED, RED, GREEN])
    _run(task)
    version = task.versions.get()
    entry = cache.index_get(version.pk)
    builds = cache.builds
    # A new row (an upload described later) is added to the cached index, not rebuilt.
    red3 = _images(workspace, [RED], seed=5)[0]
    services.upload_near_duplicates(image=red3, data=default_storage.open(red3.file).read())
    assert cache.index_get(version.pk) is entry and cache.builds == builds
    assert entry.index.size == 4
    # A deleted image leaves the answers (its row goes with it; the index is rebuilt).
    red2.delete()
    answer = services.similar_images(task=task, records=[{"_id": red1.pk}], k=5)
    found = [row["image"].pk for row in answer["records"][0]["_similar"]]
    assert red2.pk not in found and set(found) == {red3.pk, green.pk}
    assert cache.builds == builds + 1


def test_a_new_versions_descriptors_replace_the_old_versions(workspace, colour_task, colour_model):
    task = colour_task()
    _images(workspace, [RED, BLUE])
    _run(task)
    old = task.versions.get(version=1)
    new = deploy(task, colour_model, number=2)
    _run(task)
    assert not Descriptor.objects.filter(version=old).exists()
    assert Descriptor.objects.filter(version=new).count() == 2
    answer = services.similar_images(task=task, records=[{"_base64": "x"}], k=1)
    assert answer["version"] == 2


def test_another_process_builds_the_same_answers_from_the_rows(workspace, colour_task):
    """What a second web process or machine does: a cold cache, the same rows, the same answer."""
    task = colour_task()
    red1, *_ = _images(workspace, [RED, RED, GREEN, BLUE])
    _run(task)
    first = services.similar_images(task=task, records=[{"_id": red1.pk}], k=3)["records"][0]["_similar"]
    cache.clear()
    again = services.similar_images(task=task, records=[{"_id": red1.pk}], k=3)["records"][0]["_similar"]
    assert [(r["image"].pk, r["distance"]) for r in again] == [(r["image"].pk, r["distance"]) for r in first]


def test_an_approximate_index_is_stored_and_a_cold_process_reads_it_and_adds_newer_rows(
    workspace, colour_task, monkeypatch
):
    from apps.images.models import TrainingImage
    from ml import similarity
    from tests.bulk import fill_images

    monkeypatch.setattr(similarity, "EXACT_BELOW", 200)  # an IVF from 200 descriptors on
    task = colour_task()
    version = task.versions.get()
    fill_images(workspace_id=workspace.pk, count=700)
    images = list(TrainingImage.objects.filter(workspace=workspace).order_by("pk"))
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16))
    vectors = centres[rng.integers(0, 20, len(images))] + 0.3 * rng.normal(size=(len(images), 16))
    rows = [
        Descriptor(version=version, image=i, vector=v.astype(np.float16).tobytes())
        for i, v in zip(images, vectors, strict=True)
    ]
    Descriptor.objects.bulk_create(rows[:600])
    built = cache.index_get(version.pk)
    assert not built.index.exact
    assert default_storage.listdir(f"similarity/{version.pk}")[1] == [f"{built.top}-600.faiss"]

    Descriptor.objects.bulk_create(rows[600:])  # described since, e.g. uploads
    cache.clear()  # another process, cold
    builds = cache.builds
    entry = cache.index_get(version.pk)
    assert cache.builds == builds  # read from the storage, not built
    assert entry.index.size == 700 and entry.count == 700
    query = vectors[650:651]
    assert entry.search(query, 1)[0][0][0] == images[650].pk


def test_a_deleted_image_stays_a_skipped_ghost_until_ghosts_are_a_tenth_of_the_rows(
    workspace, colour_task, monkeypatch
):
    from apps.images.models import TrainingImage
    from tests.bulk import fill_images

    task = colour_task()
    version = task.versions.get()
    fill_images(workspace_id=workspace.pk, count=30)
    images = list(TrainingImage.objects.filter(workspace=workspace).order_by("pk"))
    vectors = np.random.default_rng(1).normal(size=(30, 8))
    Descriptor.objects.bulk_create(
        Descriptor(version=version, image=image, vector=vector.astype(np.float16).tobytes())
        for image, vector in zip(images, vectors, strict=True)
    )
    DescriptorRun.objects.create(
        workspace=workspace, task=task, version=version, status="DONE", finished=timezone.now()
    )
    entry = cache.index_get(version.pk)
    builds = cache.builds
    gone = images[0].pk
    images[0].delete()
    near = cache.index_get(version.pk).search(vectors[:1], 30)[0]
    assert cache.builds == builds and entry.ghosts == 1  # no rebuild for one deletion
    found = {pk for pk, _ in near}
    assert gone in found  # the ghost is still in the index; answers drop it:
    answer = services.similar_images(task=task, records=[{"_id": images[1].pk}], k=29)
    assert gone not in {row["image"].pk for row in answer["records"][0]["_similar"]}
    for image in images[1:4]:  # 4 ghosts of 26 rows: past a tenth, rebuilt without them
        image.delete()
    assert cache.index_get(version.pk).index.size == 26 and cache.builds == builds + 1
