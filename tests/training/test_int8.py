"""The INT8 attempt runs after TRAINED, in a job of its own: FP32 is served until it ends, the
switch reaches a process that had the FP32 file loaded, and a failure leaves FP32 in place."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from django.core.files.storage import default_storage

from apps.inference import cache as model_cache
from apps.training import jobs, services
from apps.training.models import ModelVersion
from tests.factories import FAST_TRAINING, make_task
from tests.pictures import COLOURS, solid

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.django_db
API = "/recognition/v2/"


@pytest.fixture
def fast(settings, tmp_path):
    for key, value in FAST_TRAINING.items():
        setattr(settings, key, value)
    settings.VF_TRAIN_EPOCHS = 30  # the three colours learned for sure (tests/training/test_download.py)
    settings.VF_TRAIN_TIME_BUDGET = 300
    settings.VF_MODEL_CACHE_DIR = tmp_path / "model-cache"
    settings.VF_INFERENCE_MODE = "auto"
    model_cache.model_cache().clear()
    yield settings
    model_cache.model_cache().clear()


def _train(api, task, capture) -> ModelVersion:
    with capture(execute=True):
        response = api.post(f"{API}task/{task.id}/train/")
    return ModelVersion.objects.get(pk=response.json()["id"])


def _classify(api, task, images) -> np.ndarray:
    records = [{"_base64": base64.b64encode(image).decode()} for image in images]
    response = api.post(f"{API}classify/", {"task_id": str(task.id), "records": records}, format="json")
    assert response.status_code == 200, response.content
    return np.array([[label["prob"] for label in r["labels"]] for r in response.json()["records"]])


def _downloaded(api, version) -> bytes:
    response = api.get(f"{API}model/{version.id}/download/?artifact=onnx")
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_the_int8_job_runs_after_training_and_the_served_file_is_the_download(
    api, user, workspace, fast, django_capture_on_commit_callbacks
):
    task, _ = make_task(workspace, user, labels=3, per_label=6)
    version = _train(api, task, django_capture_on_commit_callbacks)
    assert version.train_status == ModelVersion.Status.TRAINED
    serving = version.metrics["serving"]
    # The tests' tiny net agrees with its INT8 file (BENCHMARKS.md): the version switched to it.
    assert serving["int8"] == "accepted" and serving["precision"] == "int8", serving
    assert serving["agreement"]["top1_agreement"] >= 0.995
    assert serving["agreement"]["max_prob_diff"] <= 0.03
    assert serving["agreement"]["images"] == version.metrics["number_of_testing_images"]
    assert version.served_file == serving["file"] and version.served_file.startswith("model.int8-")
    with default_storage.open(f"{version.artifact_path}/{version.served_file}", "rb") as stored:
        assert _downloaded(api, version) == stored.read()
    # The FP32 export the training wrote stays stored beside it.
    assert default_storage.exists(f"{version.artifact_path}/model.onnx")

    # A second run of the job (a redelivered message) changes nothing.
    jobs.serve_int8(str(version.pk))
    again = ModelVersion.objects.get(pk=version.pk)
    assert again.served_file == version.served_file and again.metrics["serving"] == serving


def test_a_process_serving_fp32_switches_to_the_int8_file_when_the_job_ends(
    api, user, workspace, fast, django_capture_on_commit_callbacks, tmp_path
):
    """The model cache of a process that loaded the FP32 file before the job ended is keyed by the
    served file: the next request loads the INT8 file and answers exactly as the download does."""
    task, _ = make_task(workspace, user, labels=3, per_label=6)
    fast.VF_INT8 = False  # trained with INT8 off: the version serves FP32 and no job runs
    version = _train(api, task, django_capture_on_commit_callbacks)
    assert version.metrics["serving"]["int8"] == "skipped" and version.served_file == ""
    images = [solid(COLOURS[i], np.random.default_rng(3)) for i in range(3)]
    before = _classify(api, task, images)
    assert model_cache.model_cache().keys()[0][-1] == "model.onnx"
    fp32_download = _downloaded(api, version)

    # As if the attempt had been queued after TRAINED: it runs now, in "another process".
    version.metrics["serving"]["int8"] = "pending"
    ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
    jobs.serve_int8(str(version.pk))
    version.refresh_from_db()
    assert version.metrics["serving"]["precision"] == "int8"
    after = _classify(api, task, images)
    # The FP32 predictor is dropped from the cache, not left for the LRU to evict.
    assert [key[-1] for key in model_cache.model_cache().keys()] == [version.served_file]
    assert list(after.argmax(1)) == list(before.argmax(1))

    downloaded = _downloaded(api, version)
    assert downloaded != fp32_download
    from apps.training.artifacts import local_artifact_dir
    from ml.recognition.predictor import Predictor

    predictor = Predictor.load(local_artifact_dir(version), device="cpu")  # its preprocessing only
    batch = np.stack([predictor.preprocess(image).numpy() for image in images])
    session = ort.InferenceSession(downloaded, providers=["CPUExecutionProvider"])
    (scores,) = session.run(["scores"], {"images": batch})
    served = np.sort(after, axis=1)[:, ::-1]
    assert (served == np.round(np.sort(scores.astype(np.float64), axis=1)[:, ::-1], 5)).all()


def test_a_failed_int8_attempt_keeps_fp32_served_and_says_why(
    api, user, workspace, fast, django_capture_on_commit_callbacks
):
    task, _ = make_task(workspace, user, labels=3, per_label=6)
    fast.VF_INT8 = False
    version = _train(api, task, django_capture_on_commit_callbacks)
    version.metrics["serving"]["int8"] = "pending"
    ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
    default_storage.delete(f"{version.artifact_path}/model.json")  # the attempt cannot load the version
    fast.VF_MODEL_CACHE_DIR = fast.VF_MODEL_CACHE_DIR.parent / "empty-cache"
    jobs.serve_int8(str(version.pk))
    version.refresh_from_db()
    serving = version.metrics["serving"]
    assert serving["int8"] == "failed" and serving["precision"] == "fp32" and serving["reason"]
    assert version.served_file == ""
    assert services.model_version_serve_int8(version_id=version.pk) is None  # finished: not again


def test_the_sweep_queues_again_an_int8_attempt_whose_message_was_lost(
    api, user, workspace, fast, django_capture_on_commit_callbacks
):
    """A version TRAINED while the broker was down keeps serving FP32 with its attempt pending; the
    sweep sends the attempt again once no job could still be running it, and it completes."""
    from datetime import timedelta

    from django.utils import timezone

    task, _ = make_task(workspace, user, labels=3, per_label=6)
    fast.VF_INT8 = False
    version = _train(api, task, django_capture_on_commit_callbacks)
    version.metrics["serving"]["int8"] = "pending"
    ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
    assert services.model_versions_int8_sweep() == []  # just TRAINED: its message may still come
    late = timezone.now() - timedelta(seconds=fast.VF_TASK_TIME_LIMIT + 120)
    ModelVersion.objects.filter(pk=version.pk).update(finished=late)

    with django_capture_on_commit_callbacks(execute=True):
        jobs.sweep_stuck_trainings.delay()
    version.refresh_from_db()
    assert version.metrics["serving"]["int8"] in ("accepted", "refused")
    assert services.model_versions_int8_sweep() == []


def test_the_descriptors_wait_for_the_int8_attempt_and_come_from_the_served_file(
    api, user, workspace, fast, django_capture_on_commit_callbacks
):
    """Similarity describes the images only once the attempt ended, with the INT8 file it then
    serves: the stored rows are what that file answers, not the FP32 file's."""
    from apps.images.models import TrainingImage
    from apps.images.storage import read_bytes
    from apps.inference.cache import predictor_get
    from apps.similarity.models import Descriptor, DescriptorRun

    task, _ = make_task(workspace, user, labels=3, per_label=6)
    version = _train(api, task, django_capture_on_commit_callbacks)
    assert version.metrics["serving"]["precision"] == "int8"
    runs = list(DescriptorRun.objects.filter(task=task))
    assert len(runs) == 1 and runs[0].status == DescriptorRun.Status.DONE  # one run, after the switch
    images = list(TrainingImage.objects.filter(workspace=workspace).order_by("pk"))
    rows = {d.image_id: np.frombuffer(bytes(d.vector), dtype=np.float16) for d in Descriptor.objects.all()}
    assert set(rows) == {image.pk for image in images}

    version.task = task
    predictor = predictor_get(version)
    assert [key[-1] for key in model_cache.model_cache().keys()] == [version.served_file]
    inputs = [predictor.preprocess(read_bytes(image.file, who="test")) for image in images]
    served = predictor.predict_batch(inputs, descriptor=True)
    for image, answer in zip(images, served, strict=True):
        expected = np.asarray(answer["descriptor"], dtype=np.float16)
        assert np.array_equal(rows[image.pk], expected)


def test_without_an_int8_attempt_the_descriptors_start_at_trained(
    api, user, workspace, fast, django_capture_on_commit_callbacks
):
    from apps.similarity.models import DescriptorRun

    fast.VF_INT8 = False
    task, _ = make_task(workspace, user, labels=3, per_label=6)
    version = _train(api, task, django_capture_on_commit_callbacks)
    assert version.metrics["serving"]["int8"] == "skipped"
    assert DescriptorRun.objects.get(task=task).status == DescriptorRun.Status.DONE
