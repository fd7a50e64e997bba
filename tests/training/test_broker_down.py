"""Train pressed while the broker is down: a clear 503 and no orphan QUEUED version."""

from __future__ import annotations

import pytest

from apps.tasks.models import Task
from apps.training import services as training
from apps.training.models import ModelVersion
from config.celery import app
from tests.factories import make_task
from tests.servers import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down(monkeypatch):
    previous = (app.conf.broker_url, app.conf.task_always_eager)
    # Nothing listens on this port: a real connection attempt that is refused. Celery prefers the
    # CELERY_BROKER_URL environment variable (set in CI's Redis pass) to its configuration.
    dead = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("CELERY_BROKER_URL", dead)
    app.conf.broker_url = dead
    app.conf.task_always_eager = False
    yield
    app.conf.broker_url, app.conf.task_always_eager = previous


def test_train_with_the_broker_down_is_a_503_and_queues_nothing(api, user, workspace, settings, broker_down):
    settings.VF_MIN_IMAGES_PER_LABEL = 2
    task, _ = make_task(workspace, user, per_label=2)
    response = api.post(f"/recognition/v2/task/{task.id}/train/")
    assert response.status_code == 503
    assert response.json() == {"detail": training.MSG_QUEUE_DOWN}
    assert not ModelVersion.objects.filter(task=task).exists()
    task.refresh_from_db()
    assert task.last_train_status == Task.TrainStatus.NOT_TRAINED


def test_health_reports_the_broker_down(anon, broker_down):
    response = anon.get("/health")
    assert response.status_code == 503
    assert response.json()["broker"] == "error: unreachable"
    assert response.json()["database"] == "ok"
