"""The media volume full: uploads answer a JSON 507 and leave nothing half-written; a training that
cannot save its model fails its version with the reason, and the deployed version keeps serving.

The full volume is tests/faults/full_disk.py's storage: a write that does not fit writes what fits
and fails with ENOSPC, as a full filesystem does (no root here to mount a small one).
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from django.core.files.storage import storages

from apps.backups.services import storage_check
from apps.core.errors import MSG_STORAGE_FULL
from apps.images.models import TrainingImage
from apps.images.services import prepare_image
from apps.tasks.models import Task
from apps.training import artifacts
from apps.training import services as training
from apps.training.models import ModelVersion
from tests.factories import make_task
from tests.faults.full_disk import FullDiskStorage
from tests.pictures import COLOURS, picture, solid

pytestmark = pytest.mark.django_db


@pytest.fixture
def full_disk(settings):
    """The default storage is a FullDiskStorage on the test's media folder, with room to spare
    until the test takes it away."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.faults.full_disk.FullDiskStorage"},
    }
    storages._storages.pop("default", None)  # the handler caches backends; rebuild from the settings
    FullDiskStorage.free_bytes = 1 << 40
    yield FullDiskStorage
    FullDiskStorage.free_bytes = 1 << 40
    storages._storages.pop("default", None)


def _stored_files(settings) -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _files_of_rows() -> set[str]:
    return {name for pair in TrainingImage.objects.values_list("file", "thumbnail") for name in pair}


@pytest.mark.parametrize("cut", ["image", "thumbnail"], ids=["the image write", "the thumbnail write"])
def test_an_upload_onto_a_full_volume_is_a_json_507_that_leaves_no_part_of_it(api, settings, full_disk, cut):
    first = api.post("/recognition/v2/training-image/", {"base64": base64.b64encode(picture()).decode()})
    assert first.status_code == 201, first.content
    before = _stored_files(settings)
    assert before == _files_of_rows() and len(before) == 2

    data = picture(size=(300, 200), color=(20, 160, 90))
    stored, _, thumbnail, _ = prepare_image(data, noresize=False)
    # Room for half of the image, or for the image and half of its thumbnail: the write that
    # does not fit leaves its first half on the disk, as a full filesystem does.
    full_disk.free_bytes = len(stored) // 2 if cut == "image" else len(stored) + len(thumbnail) // 2
    response = api.post("/recognition/v2/training-image/", {"base64": base64.b64encode(data).decode()})

    assert response.status_code == 507
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": MSG_STORAGE_FULL}
    assert full_disk.free_bytes == 0  # the write really ran out of room part way
    assert TrainingImage.objects.count() == 1
    assert _stored_files(settings) == before  # no part of the image or its thumbnail is left
    report = storage_check(min_age=0)
    assert (report.orphan_files, report.missing) == ([], [])

    # With room again the same upload goes through: nothing of the failed one is in its way.
    full_disk.free_bytes = 1 << 40
    again = api.post("/recognition/v2/training-image/", {"base64": base64.b64encode(data).decode()})
    assert again.status_code == 201, again.content
    assert _stored_files(settings) == _files_of_rows()


@pytest.mark.slow
def test_a_training_that_cannot_save_its_model_fails_with_the_reason_and_version_1_keeps_serving(
    api, user, workspace, settings, full_disk, fast_training, django_capture_on_commit_callbacks
):
    task, labels = make_task(workspace, user, per_label=8)
    with django_capture_on_commit_callbacks(execute=True):
        v1 = api.post(f"/recognition/v2/task/{task.id}/train/").json()
    assert ModelVersion.objects.get(pk=v1["id"]).train_status == "TRAINED"
    rng = np.random.default_rng(7)
    records = [{"_base64": base64.b64encode(solid(COLOURS[n], rng)).decode()} for n in range(len(labels))]
    served = api.post(
        "/recognition/v2/classify/", {"task_id": str(task.id), "records": records}, format="json"
    )
    assert served.status_code == 200, served.content
    weights = artifacts.local_artifact_dir(ModelVersion.objects.get(pk=v1["id"])) / "model.safetensors"

    # The volume fills up: room for part of version 2's weights only.
    full_disk.free_bytes = weights.stat().st_size // 3
    with django_capture_on_commit_callbacks(execute=True):
        v2 = api.post(f"/recognition/v2/task/{task.id}/train/").json()

    version = ModelVersion.objects.get(pk=v2["id"])
    assert version.train_status == "FAILED"
    assert version.metrics["error"] == training.MSG_STORAGE_FULL
    assert version.artifact_path == ""
    prefix = Path(settings.MEDIA_ROOT) / artifacts.artifact_prefix(version)
    assert not prefix.exists() or not any(prefix.iterdir())  # no half a model left behind
    task.refresh_from_db()
    assert (task.production_version, task.last_train_status) == (1, Task.TrainStatus.FAILED)
    api_view = api.get(f"/recognition/v2/model/{v2['id']}").json()
    assert api_view["train_status"] == "FAILED" and api_view["metrics"]["error"] == training.MSG_STORAGE_FULL

    # Classification goes on with version 1, answering as before.
    again = api.post(
        "/recognition/v2/classify/", {"task_id": str(task.id), "records": records}, format="json"
    )
    assert again.status_code == 200, again.content
    assert again.json()["version"] == 1
    assert [r["best_label"] for r in again.json()["records"]] == [
        r["best_label"] for r in served.json()["records"]
    ]
