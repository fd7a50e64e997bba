"""A kind of task plugs into the lifecycle and the model cache with its own functions only.

Recognition and detection each register a trainer and a predictor (apps/core/kinds.py); here a
stand-in kind takes the multi_class slot and goes through train -> TRAINED -> deployed -> classify
without any of the image-recognition code.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from apps.core.kinds import KINDS, Predictor, TaskKind, Trainer, TrainOutcome
from apps.inference import cache
from apps.training import artifacts
from apps.training.models import ModelVersion
from tests.factories import TaskFactory
from tests.pictures import picture

pytestmark = pytest.mark.django_db


class FakePredictor:
    labels = [{"id": "0a8c8186-aee8-47c8-9eaf-348103feb14d", "name": "box"}]

    def preprocess(self, image):
        return image.size

    def predict_batch(self, inputs, descriptor=False):
        return [{"boxes": [[0, 0, width, height]]} for width, height in inputs]


def fake_train(*, version, out_dir, progress):
    progress({"percent": 50.0, "epoch": 1, "loss": 0.25})
    for name in artifacts.ARTIFACT_FILES:
        (Path(out_dir) / name).write_text("{}")
    return TrainOutcome(metrics={"map": 0.75}, warnings=["stand-in"], evaluation=[{"image_id": "x"}])


def fake_answer(prediction, predictor, names, threshold):
    return {"_objects": [{"name": "box", "bound_box": box} for box in prediction["boxes"]]}


@pytest.fixture
def stand_in_kind(monkeypatch, settings, tmp_path):
    settings.VF_MODEL_CACHE_DIR = tmp_path / "model-cache"
    validated = []
    monkeypatch.setitem(
        KINDS._kinds,
        "multi_class",
        TaskKind(
            trainer=Trainer(validate=lambda *, task: validated.append(task.pk), train=fake_train),
            predictor=Predictor(
                load=lambda directory, **kwargs: FakePredictor(),
                answer=fake_answer,
                names=lambda *, labels: {},
            ),
        ),
    )
    yield validated
    cache.model_cache().clear()


def test_a_kind_trains_deploys_and_classifies_through_the_shared_lifecycle_and_cache(
    api, workspace, stand_in_kind, django_capture_on_commit_callbacks
):
    task = TaskFactory(workspace=workspace)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/recognition/v2/task/{task.pk}/train/")
    assert response.status_code == 200, response.json()
    assert stand_in_kind == [task.pk]
    version = ModelVersion.objects.get(pk=response.json()["id"])
    assert version.train_status == "TRAINED"
    assert version.metrics == {"map": 0.75} and version.warnings == ["stand-in"]
    task.refresh_from_db()
    assert task.production_version == version.version

    record = {"_base64": base64.b64encode(picture(size=(30, 20), fmt="PNG")).decode()}
    answer = api.post(
        "/recognition/v2/classify/", {"task_id": str(task.pk), "records": [record]}, format="json"
    )
    assert answer.status_code == 200, answer.json()
    assert answer.json()["records"][0]["_objects"] == [{"name": "box", "bound_box": [0, 0, 30, 20]}]


def test_a_task_type_without_a_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="No kind of task is registered for tasks of type 'segmentation'"):
        KINDS.get("segmentation")
