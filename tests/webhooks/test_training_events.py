"""Training's events reach a real receiver: a tiny training through the API (jobs inline) sends
``training.started`` and ``training.finished``, then the pool's scoring ``suggestions.ready``; a
training that fails sends ``training.failed`` with the reason. Every one signed."""

from __future__ import annotations

import numpy as np
import pytest

from apps.images.services import training_image_ingest
from apps.webhooks import services
from apps.webhooks.events import EVENTS
from tests.factories import make_task
from tests.pictures import solid

pytestmark = pytest.mark.usefixtures("fast_training")

TASK_FIELDS = {"id", "name", "type"}
MODEL_FIELDS = {
    "id", "version", "train_status", "created", "started", "finished", "attempts", "accuracy",
    "is_production", "error",
}  # fmt: skip


def train(api, task, capture):
    with capture(execute=True):
        response = api.post(f"/recognition/v2/task/{task.pk}/train/")
    assert response.status_code == 200, response.content
    return response.json()["id"]


def test_a_training_sends_started_finished_and_suggestions_ready_signed(
    api, user, workspace, receiver, django_capture_on_commit_callbacks
):
    hook = services.webhook_create(workspace=workspace, actor=user, url=receiver.url, events=list(EVENTS))
    task, _ = make_task(workspace, user, per_label=5)
    rng = np.random.default_rng(5)
    for colour in [(200, 30, 30), (30, 200, 30)]:  # unlabelled: the task's pool
        training_image_ingest(workspace=workspace, data=solid(colour, rng))

    model_id = train(api, task, django_capture_on_commit_callbacks)

    started, finished, ready = receiver.wait_for(3)
    assert [r.event for r in (started, finished, ready)] == [
        "training.started",
        "training.finished",
        "suggestions.ready",
    ]
    assert all(r.signed_with(hook.secret) for r in (started, finished, ready))
    for request in (started, finished, ready):
        body = request.json
        assert body["event"] == request.event and body["id"] == request.delivery
        assert body["workspace"] == str(workspace.pk)
        assert set(body["data"]["task"]) == TASK_FIELDS and body["data"]["task"]["id"] == str(task.pk)

    model = started.json["data"]["model"]
    assert set(model) == MODEL_FIELDS
    assert model["id"] == model_id and model["train_status"] == "IN_TRAINING" and model["attempts"] == 1
    model = finished.json["data"]["model"]
    assert model["id"] == model_id and model["version"] == 1 and model["train_status"] == "TRAINED"
    assert model["is_production"] is True and model["error"] is None
    assert 0 <= model["accuracy"] <= 1 and model["finished"].endswith("Z")
    run = ready.json["data"]["run"]
    assert set(run) == {"id", "version", "count", "finished"}
    assert run["version"] == 1 and run["count"] == 2


def test_a_failed_training_sends_training_failed_with_the_reason(
    api, user, workspace, receiver, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.VF_TRAIN_PRETRAINED = str(tmp_path / "missing.safetensors")
    hook = services.webhook_create(
        workspace=workspace, actor=user, url=receiver.url, events=["training.failed"]
    )
    task, _ = make_task(workspace, user, per_label=5)

    model_id = train(api, task, django_capture_on_commit_callbacks)

    (failed,) = receiver.wait_for(1)
    assert failed.event == "training.failed" and failed.signed_with(hook.secret)
    model = failed.json["data"]["model"]
    assert model["id"] == model_id and model["train_status"] == "FAILED" and model["is_production"] is False
    assert "pretrained weights file not found" in model["error"]
