"""Training with a real Celery worker process over Redis and PostgreSQL.

These need both services. CI runs the suite twice: on SQLite with nothing else (DATABASE_URL and
CELERY_BROKER_URL unset: these skip, the second pass covers them) and with
DATABASE_URL=postgres://... and CELERY_BROKER_URL=redis://... (scripts/test.sh): there they must
run, and an unreachable service fails through require_service when CI=true. A laptop without the
variables skips. Try them with
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/test CELERY_BROKER_URL=redis://127.0.0.1:6379/0
.venv/bin/python -m pytest tests/training/test_worker.py``.

The worker uses its own Redis database (``WORKER_REDIS_DB``) so a development worker consuming the
usual one cannot steal the test's messages; the test process publishes there too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from apps.tasks.models import Task
from apps.training import artifacts
from apps.training import services as training
from apps.training.models import ModelVersion
from ml.recognition.predictor import Predictor
from tests.conftest import require_service, service_reachable
from tests.factories import FAST_TRAINING, make_task
from tests.pictures import COLOURS, solid

pytestmark = [pytest.mark.services, pytest.mark.slow]

WORKER_REDIS_DB = 13
STALE_AFTER_S = 4
TIMEOUT_S = 180


def _requirements() -> str:
    """Skip or fail (CI) unless PostgreSQL and Redis are configured and reachable; the Redis URL."""
    database_url = os.environ.get("DATABASE_URL", "")
    broker_url = os.environ.get("CELERY_BROKER_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")) or not broker_url.startswith("redis://"):
        pytest.skip("needs DATABASE_URL=postgres://... and CELERY_BROKER_URL=redis://...")
    db = connection.settings_dict
    require_service(
        connection.vendor == "postgresql"
        and service_reachable(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)),
        "PostgreSQL",
    )
    parts = urlsplit(broker_url)
    require_service(service_reachable(parts.hostname or "127.0.0.1", parts.port or 6379), "Redis")
    return urlunsplit(parts._replace(path=f"/{WORKER_REDIS_DB}"))


@pytest.fixture
def broker(transactional_db, settings, tmp_path, monkeypatch):
    """The test process publishes to the worker's Redis database, and jobs are not eager."""
    import redis

    from config.celery import app

    url = _requirements()
    redis.Redis.from_url(url).flushdb()
    for key, value in FAST_TRAINING.items():
        setattr(settings, key, value)
    settings.VF_MODEL_CACHE_DIR = tmp_path / "model-cache"
    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app.conf.task_always_eager = False
    app._after_fork()  # drop pooled connections to the previous broker
    yield url
    app.conf.task_always_eager = True
    monkeypatch.undo()
    app._after_fork()


def _database_url() -> str:
    db = connection.settings_dict  # during tests NAME is the test database (test_<name>)
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """``celery worker`` with the pool production runs (prefork, as scripts/run.sh and compose start
    it), as a subprocess in its own process group (so SIGKILL takes all of it). ``args`` go on its
    command line (``-B`` for beat)."""

    def __init__(self, broker_url: str, log: Path, args: tuple[str, ...] = (), **env):
        self.log = log
        environment = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": broker_url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "VF_MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
            "VF_MODEL_CACHE_DIR": str(django_settings.VF_MODEL_CACHE_DIR),
            "VF_MIN_IMAGES_PER_LABEL": str(FAST_TRAINING["VF_MIN_IMAGES_PER_LABEL"]),
            "VF_TRAIN_ARCHITECTURE": FAST_TRAINING["VF_TRAIN_ARCHITECTURE"],
            "VF_PRETRAINED": FAST_TRAINING["VF_TRAIN_PRETRAINED"],
            "VF_TRAIN_EPOCHS": str(FAST_TRAINING["VF_TRAIN_EPOCHS"]),
            "VF_TRAIN_TIME_BUDGET": str(FAST_TRAINING["VF_TRAIN_TIME_BUDGET"]),
            "VF_TRAIN_THREADS": "1",
            "VF_TRAINING_HEARTBEAT_INTERVAL": "1",
            "VF_TRAINING_STALE_AFTER": str(STALE_AFTER_S),
            "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.output = open(log, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default,training",
             "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO",
             "-n", f"test-{os.getpid()}-{time.monotonic_ns()}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat", *args],
            cwd=django_settings.BASE_DIR, env=environment, stdout=self.output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.output.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def workers(broker, tmp_path):
    started: list[Worker] = []

    def start(**env) -> Worker:
        worker = Worker(broker, tmp_path / f"worker-{len(started)}.log", **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(predicate, what: str, worker: Worker | None = None, timeout: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and worker.process.poll() is not None:
            pytest.fail(
                f"worker exited ({worker.process.returncode}) waiting for {what}:\n{worker.text()[-4000:]}"
            )
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}" + (f":\n{worker.text()[-4000:]}" if worker else ""))


def finished(version_id):
    version = ModelVersion.objects.get(pk=version_id)
    return version if version.train_status in ("TRAINED", "FAILED") else None


def test_a_worker_process_trains_deploys_and_retrains(api, user, workspace, workers):
    task, _ = make_task(workspace, user, per_label=8)
    worker = workers()

    first = api.post(f"/recognition/v2/task/{task.id}/train/").json()
    assert first["train_status"] == "QUEUED"  # answered before the worker took it
    version = wait_for(lambda: finished(first["id"]), "version 1", worker)

    assert version.train_status == "TRAINED", version.metrics
    assert version.accuracy >= 0.75
    task.refresh_from_db()
    assert (task.production_version, task.last_train_status) == (1, "TRAINED")
    wait_for(lambda: "Subject: Training finished" in worker.text(), "the e-mail", worker, timeout=10)
    assert "Subject: Training started" in worker.text()

    second = api.post(f"/v2/task/{task.id}/train").json()
    assert second["version"] == 2
    assert wait_for(lambda: finished(second["id"]), "version 2", worker).train_status == "TRAINED"
    task.refresh_from_db()
    assert task.production_version == 2


def _v1_answers(version_id, pictures: list[bytes]) -> np.ndarray:
    """The probabilities version ``version_id`` gives ``pictures``, loaded afresh from its artifacts."""
    predictor = Predictor.load(
        artifacts.local_artifact_dir(ModelVersion.objects.get(pk=version_id)), device="cpu"
    )
    return np.array([answer["probs"] for answer in predictor.predict(pictures)])


def test_a_worker_killed_during_training_leaves_no_stuck_version_and_version_1_keeps_serving(
    api, user, workspace, workers, django_capture_on_commit_callbacks
):
    from config.celery import app

    task, labels = make_task(workspace, user, per_label=8)
    # Version 1 trains in this process (eager), so it is deployed before any worker runs.
    app.conf.task_always_eager = True
    v1 = api.post(f"/recognition/v2/task/{task.id}/train/").json()
    assert ModelVersion.objects.get(pk=v1["id"]).train_status == "TRAINED"
    app.conf.task_always_eager = False
    # What version 1 answers before anything else happens (a four-epoch model's answers, whatever
    # they are: this test is about what the kill changes, not about how good the model is).
    rng = np.random.default_rng(123)
    probes = [solid(COLOURS[n], rng) for n in range(len(labels))]
    before = _v1_answers(v1["id"], probes)

    # A worker with a long training, killed (SIGKILL, the whole process) once it is under way.
    doomed = workers(VF_TRAIN_EPOCHS="500", VF_TRAIN_TIME_BUDGET="300")
    v2 = api.post(f"/recognition/v2/task/{task.id}/train/").json()
    assert v2["version"] == 2
    wait_for(
        lambda: ModelVersion.objects.filter(pk=v2["id"], train_status="IN_TRAINING", epoch__gte=1).exists(),
        "version 2 to be training",
        doomed,
    )
    doomed.kill()

    # Nothing changed for classification: version 1 is deployed and loads from its artifacts.
    task.refresh_from_db()
    assert task.production_version == 1
    np.testing.assert_allclose(_v1_answers(v1["id"], probes), before, atol=1e-6)

    # Once its heartbeat is stale, a new worker's start-up sweep requeues it, and it finishes.
    wait_for(
        lambda: (
            ModelVersion.objects.get(pk=v2["id"]).heartbeat
            < timezone.now() - timedelta(seconds=STALE_AFTER_S + 1)
        ),
        "the heartbeat to go stale",
    )
    rescuer = workers()
    version = wait_for(lambda: finished(v2["id"]), "version 2 to finish", rescuer)

    assert version.train_status == "TRAINED", version.metrics  # rescued, not given up
    assert version.attempts == 2
    assert training.model_versions_sweep() == {"requeued": [], "failed": []}
    assert not ModelVersion.objects.filter(train_status__in=("QUEUED", "IN_TRAINING")).exists()
    task.refresh_from_db()
    assert task.last_train_status == "TRAINED"
    assert task.production_version == 2
    assert Task.objects.get(pk=task.pk).versions.count() == 2


def test_a_killed_pool_process_is_replaced_and_its_training_finishes_without_waiting(
    api, user, workspace, workers
):
    """SIGKILL of the pool process that trains (the OOM killer's way): Celery redelivers the job
    to the new pool process, which sees that the claim's process is gone and trains at once, well
    before the heartbeat could go stale (the production window here, not the tests' short one)."""
    task, _ = make_task(workspace, user, per_label=8)
    worker = workers(VF_TRAINING_STALE_AFTER="600", VF_TRAIN_EPOCHS="500", VF_TRAIN_TIME_BUDGET="20")
    queued = api.post(f"/recognition/v2/task/{task.id}/train/").json()
    training_version = wait_for(
        lambda: ModelVersion.objects.filter(
            pk=queued["id"], train_status="IN_TRAINING", epoch__gte=1
        ).first(),
        "the training to be under way",
        worker,
    )
    host, pid, _ = training_version.claimed_by.rsplit("/", 2)
    assert int(pid) != worker.process.pid  # a pool process, not the worker's main process
    os.kill(int(pid), signal.SIGKILL)
    killed_at = time.monotonic()

    version = wait_for(lambda: finished(queued["id"]), "the rescued training", worker)
    rescued_after = time.monotonic() - killed_at

    assert version.train_status == "TRAINED", version.metrics
    assert version.attempts == 2
    assert version.claimed_by.rsplit("/", 2)[1] != pid
    own_time = (version.finished - version.started).total_seconds()
    assert rescued_after <= own_time + 60, (rescued_after, own_time)
    assert "taking over" in worker.text()
    assert worker.process.poll() is None  # the worker itself lived on


def test_the_sweep_sends_a_queued_version_again_only_when_its_message_is_lost(broker, user, workspace):
    """One version, one message: while messages wait in the training queue the sweep sends none;
    once the queue is empty (the message was lost) it sends exactly one."""
    import redis

    from apps.training.jobs import train_model_version

    queue = redis.Redis.from_url(broker)
    task, _ = make_task(workspace, user, per_label=5)
    long_ago = timezone.now() - timedelta(seconds=django_settings.VF_TRAINING_STALE_AFTER + 5)
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status="QUEUED", heartbeat=long_ago
    )
    train_model_version.delay(str(version.pk))  # its message, waiting behind a busy worker
    assert queue.llen("training") == 1

    assert training.model_versions_sweep() == {"requeued": [], "failed": []}
    assert queue.llen("training") == 1

    queue.delete("training")  # lost: e.g. Redis restarted without persistence
    assert training.model_versions_sweep()["requeued"] == [version.pk]
    assert queue.llen("training") == 1

    ModelVersion.objects.filter(pk=version.pk).update(heartbeat=long_ago)
    assert training.model_versions_sweep()["requeued"] == []  # its new message waits: no third one
    assert queue.llen("training") == 1
