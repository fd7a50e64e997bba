"""Training lifecycle services and jobs: claim, sweep, progress, deploy, artifacts.

The request side (train through the API) is in test_api.py."""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from apps.training import artifacts, jobs
from apps.training import services as training
from apps.training.models import ModelVersion
from tests.conftest import require_service, service_reachable
from tests.factories import add_trained_version, make_task
from tests.pictures import solid

pytestmark = pytest.mark.usefixtures("fast_training")


def _use_postgres() -> None:
    """Tests that need PostgreSQL row locks.

    CI runs the suite twice: on SQLite (DATABASE_URL unset: skip, the second pass covers it) and
    with DATABASE_URL=postgres://... (must run; an unreachable server fails through
    require_service when CI=true). A laptop without DATABASE_URL skips.
    """
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://...)")
    require_service(connection.vendor == "postgresql", "PostgreSQL")
    settings = connection.settings_dict
    require_service(
        service_reachable(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)), "PostgreSQL"
    )


@pytest.mark.services
def test_eight_concurrent_train_requests_queue_one_training(transactional_db, user, workspace, monkeypatch):
    _use_postgres()
    enqueued = []
    monkeypatch.setattr(training, "_enqueue", enqueued.append)
    task, _ = make_task(workspace, user, per_label=5)
    barrier = threading.Barrier(8)
    answers, errors = [], []

    def request():
        try:
            barrier.wait()
            answers.append(training.task_train(task=task, user=user).pk)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(answers)) == 1 and len(answers) == 8
    assert ModelVersion.objects.filter(task=task).count() == 1
    assert len(enqueued) == 1


def test_the_job_skips_a_version_that_is_already_finished(user, workspace, tmp_path, monkeypatch):
    task, _ = make_task(workspace, user, per_label=5)
    version = add_trained_version(task, 1, tmp_path)
    monkeypatch.setattr(training, "model_version_train", lambda **kw: pytest.fail("trained twice"))

    jobs.train_model_version.delay(str(version.pk))

    version.refresh_from_db()
    assert version.train_status == "TRAINED" and version.attempts == 0
    assert mail.outbox == []


def test_the_job_skips_a_version_a_live_worker_is_training(user, workspace, monkeypatch):
    task, _ = make_task(workspace, user, per_label=5)
    version = ModelVersion.objects.create(
        workspace=workspace,
        task=task,
        version=1,
        train_status="IN_TRAINING",
        heartbeat=timezone.now(),
        attempts=1,
    )
    monkeypatch.setattr(training, "model_version_train", lambda **kw: pytest.fail("trained twice"))

    jobs.train_model_version.delay(str(version.pk))

    version.refresh_from_db()
    assert version.train_status == "IN_TRAINING" and version.attempts == 1


def test_the_sweep_requeues_a_version_whose_worker_died(
    user, workspace, settings, django_capture_on_commit_callbacks
):
    settings.VF_TRAIN_EPOCHS = 1
    task, _ = make_task(workspace, user, per_label=5)
    dead = timezone.now() - timedelta(seconds=settings.VF_TRAINING_STALE_AFTER + 5)
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status="IN_TRAINING", heartbeat=dead, attempts=1
    )

    with django_capture_on_commit_callbacks(execute=True):
        result = jobs.sweep_stuck_trainings.delay().get()

    assert result == {"requeued": [str(version.pk)], "failed": []}
    version.refresh_from_db()
    assert version.train_status == "TRAINED" and version.attempts == 2


def test_the_sweep_fails_a_version_out_of_attempts_and_tells_the_owner(user, workspace, settings):
    task, _ = make_task(workspace, user, per_label=5)
    dead = timezone.now() - timedelta(seconds=settings.VF_TRAINING_STALE_AFTER + 5)
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status="IN_TRAINING", heartbeat=dead, attempts=2
    )

    jobs.sweep_stuck_trainings.delay()

    version.refresh_from_db()
    assert version.train_status == "FAILED"
    assert version.metrics["error"] == training.MSG_WORKER_LOST.format(attempts=2)
    task.refresh_from_db()
    assert task.last_train_status == "FAILED"
    assert mail.outbox[-1].subject.startswith("Training failed")


def test_the_sweep_requeues_a_long_queued_version_and_fails_one_queued_for_too_long(
    user, workspace, settings, monkeypatch
):
    enqueued = []
    monkeypatch.setattr(training, "_enqueue", enqueued.append)
    task, _ = make_task(workspace, user, per_label=5)
    other, _ = make_task(workspace, user, per_label=5, seed=1)
    stale = timezone.now() - timedelta(seconds=settings.VF_TRAINING_STALE_AFTER + 5)
    lost = ModelVersion.objects.create(workspace=workspace, task=task, version=1, heartbeat=stale)
    ancient = ModelVersion.objects.create(workspace=workspace, task=other, version=1, heartbeat=stale)
    ModelVersion.objects.filter(pk=ancient.pk).update(
        created=timezone.now() - timedelta(seconds=settings.VF_TRAINING_QUEUED_MAX_AGE + 5)
    )
    fresh = ModelVersion.objects.create(workspace=workspace, task=task, version=2, heartbeat=timezone.now())

    result = training.model_versions_sweep()

    assert result["requeued"] == [lost.pk]
    assert [v.pk for v in result["failed"]] == [ancient.pk]
    lost.refresh_from_db(), ancient.refresh_from_db(), fresh.refresh_from_db()
    assert lost.train_status == "QUEUED" and lost.heartbeat > stale
    assert ancient.train_status == "FAILED"
    assert fresh.train_status == "QUEUED"


def test_progress_is_written_at_most_once_a_second(user, workspace):
    task, _ = make_task(workspace, user, per_label=5)
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status="IN_TRAINING"
    )
    writer = training._ProgressWriter(version.pk)

    writer({"epoch": 1, "loss": 0.7, "percent": 20.0})
    writer({"epoch": 2, "loss": 0.5, "percent": 40.0})  # within the second: dropped

    version.refresh_from_db()
    assert (version.epoch, version.loss, version.progress) == (1, 0.7, 20.0)
    assert version.heartbeat is not None


def test_progress_says_what_the_training_does_and_a_new_stage_is_written_at_once(user, workspace):
    task, _ = make_task(workspace, user, per_label=5)
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status="IN_TRAINING"
    )
    writer = training._ProgressWriter(version.pk)

    writer(
        {"candidate": "lite2_probe", "stage": "features of tf_efficientnet_lite2 (1 of 2)", "percent": 5.0}
    )
    writer({"candidate": "lite2_probe", "stage": "choosing the head by cross-validation", "percent": 9.0})

    version.refresh_from_db()
    assert version.stage == "lite2_probe: choosing the head by cross-validation"
    assert version.progress == 9.0 and version.epoch is None
    assert training.progress_stage({"candidate": "finetune", "epoch": 3}) == "finetune: training"
    assert training.progress_stage({"epoch": 3}) == "training"  # the detector reports epochs only
    assert training.progress_stage({"percent": 50}) == ""


def test_local_artifact_dir_downloads_once_and_refuses_an_untrained_version(user, workspace, tmp_path):
    task, _ = make_task(workspace, user, per_label=5)
    version = add_trained_version(task, 1, tmp_path)

    first = artifacts.local_artifact_dir(version)
    second = artifacts.local_artifact_dir(version)

    assert first == second and (first / "model.json").read_text() == "{}"
    with pytest.raises(FileNotFoundError):
        artifacts.local_artifact_dir(ModelVersion(task=task, version=9))


def test_drawn_images_are_unique(workspace):
    import numpy as np

    rng = np.random.default_rng(0)
    assert solid((1, 2, 3), rng) != solid((1, 2, 3), rng)
