"""SIGTERM to the worker mid-training, as a deploy sends it: the version is handed back to the
queue or finished, never lost, and a handed-back version costs no attempt.

Two ways a deploy stops a worker. systemd (and ``kill`` of the process group) signal every
process: the pool process training gets SIGTERM itself and hands its version back at once.
``docker stop`` signals the main process only: Celery's warm shutdown would wait for the training
however long it takes, and the platform's deadline would end it with SIGKILL (the version then
waits for the sweep and loses an attempt); after VF_WORKER_SHUTDOWN_GRACE seconds the worker stops
the training itself and hands it back. A training that ends within the grace just finishes.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from apps.training.models import ModelVersion
from tests.factories import make_task
from tests.faults.conftest import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]

GRACE_S = 2


def _under_way(version_id, worker):
    wait_until(
        lambda: ModelVersion.objects.filter(pk=version_id, train_status="IN_TRAINING", epoch__gte=1).exists(),
        "the training to be under way",
        log=worker.text,
    )


def _exits(worker, within: float) -> int:
    try:
        return worker.process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not stop within {within} s:\n{worker.text()[-4000:]}")


@pytest.mark.parametrize(
    "every_process", [True, False], ids=["SIGTERM to every process", "SIGTERM to the main process"]
)
def test_a_worker_stopped_mid_training_hands_the_version_back_and_the_next_worker_trains_it(
    api, user, workspace, faults_redis, start_worker, every_process
):
    import redis

    task, _ = make_task(workspace, user, per_label=6)
    task.train_time_budget = 120  # far longer than any deadline of a deploy
    task.save(update_fields=["train_time_budget"])
    worker = start_worker(VF_TRAIN_EPOCHS="1000", VF_WORKER_SHUTDOWN_GRACE=str(GRACE_S))
    queued = api.post(f"/recognition/v2/task/{task.id}/train/").json()
    _under_way(queued["id"], worker)

    if every_process:
        os.killpg(worker.process.pid, signal.SIGTERM)
    else:
        os.kill(worker.process.pid, signal.SIGTERM)
    _exits(worker, within=GRACE_S + 30)

    version = ModelVersion.objects.get(pk=queued["id"])
    assert (version.train_status, version.attempts, version.claimed_by) == ("QUEUED", 0, "")
    assert redis.Redis.from_url(faults_redis).llen("training") >= 1  # its message waits for the next worker
    assert "handed back to the queue: its worker is stopping" in worker.text()
    if not every_process:
        assert "shutdown grace over" in worker.text()

    task.train_time_budget = 6  # the next worker's run need not be long
    task.save(update_fields=["train_time_budget"])
    successor = start_worker()
    version = wait_until(
        lambda: ModelVersion.objects.filter(pk=queued["id"], train_status__in=("TRAINED", "FAILED")).first(),
        "the version to be trained by the next worker",
        log=successor.text,
    )
    assert version.train_status == "TRAINED", version.metrics
    assert version.attempts == 1  # the stopped run did not count
    trained = f"model version {queued['id']} trained"
    wait_until(lambda: trained in successor.text(), "the log line (written after the commit)", timeout=30)
    assert successor.text().count(trained) == 1


def test_a_training_that_ends_within_the_grace_finishes_before_the_worker_stops(
    api, user, workspace, faults_redis, start_worker
):
    task, _ = make_task(workspace, user, per_label=6)
    task.train_time_budget = 8
    task.save(update_fields=["train_time_budget"])
    worker = start_worker(VF_TRAIN_EPOCHS="1000", VF_WORKER_SHUTDOWN_GRACE="120")
    queued = api.post(f"/recognition/v2/task/{task.id}/train/").json()
    _under_way(queued["id"], worker)

    os.kill(worker.process.pid, signal.SIGTERM)  # the warm shutdown waits for the training
    _exits(worker, within=90)

    version = ModelVersion.objects.get(pk=queued["id"])
    assert (version.train_status, version.attempts) == ("TRAINED", 1), version.metrics
    assert "handed back" not in worker.text()
