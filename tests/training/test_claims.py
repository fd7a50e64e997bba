"""Who holds a training, and taking over from a worker process that died (apps/training/claims.py)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from django.utils import timezone

from apps.training import claims
from apps.training import services as training
from apps.training.models import ModelVersion
from tests.factories import make_task


def _identity_of_a_finished_process() -> str:
    child = subprocess.Popen(
        [sys.executable, "-c", "from apps.training.claims import worker_identity; print(worker_identity())"],
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = child.communicate(timeout=60)
    return out.strip()


def test_a_live_process_holds_its_claim_and_a_finished_one_does_not():
    mine = claims.worker_identity()
    host, pid, ticks = mine.rsplit("/", 2)
    assert host == socket.gethostname() and ticks
    assert not claims.claim_holder_is_gone(mine)
    assert claims.claim_holder_is_gone(_identity_of_a_finished_process())


def test_a_claim_it_cannot_check_counts_as_held():
    assert not claims.claim_holder_is_gone("")  # rows from before claims were recorded
    assert not claims.claim_holder_is_gone("another-machine/1234/5678")
    assert not claims.claim_holder_is_gone("garbage")


def test_a_reused_pid_does_not_pass_for_the_dead_claimer():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ticks = claims._start_ticks(sleeper.pid)
        host = socket.gethostname()
        assert not claims.claim_holder_is_gone(f"{host}/{sleeper.pid}/{ticks}")
        # The same pid, but the claim was made by a process that started at another time.
        assert claims.claim_holder_is_gone(f"{host}/{sleeper.pid}/{int(ticks) - 1}")
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.django_db
def test_a_redelivered_job_takes_over_from_a_dead_worker_process_at_once(user, workspace):
    task, _ = make_task(workspace, user, per_label=5)
    version = ModelVersion.objects.create(
        workspace=workspace,
        task=task,
        version=1,
        train_status="IN_TRAINING",
        heartbeat=timezone.now(),  # fresh: the sweep would wait VF_TRAINING_STALE_AFTER
        started=timezone.now(),
        attempts=1,
        claimed_by=_identity_of_a_finished_process(),
    )

    claimed = training.model_version_claim(version_id=version.pk)

    assert claimed is not None and claimed.train_status == "IN_TRAINING"
    assert claimed.attempts == 2
    assert claimed.claimed_by == claims.worker_identity()


@pytest.mark.django_db
def test_a_redelivered_job_leaves_a_live_claim_alone(user, workspace):
    task, _ = make_task(workspace, user, per_label=5)
    version = ModelVersion.objects.create(
        workspace=workspace,
        task=task,
        version=1,
        train_status="IN_TRAINING",
        heartbeat=timezone.now(),
        attempts=1,
        claimed_by="another-machine/77/1",  # cannot be checked from here: the sweep decides
    )
    assert training.model_version_claim(version_id=version.pk) is None
    version.refresh_from_db()
    assert (version.attempts, version.claimed_by) == (1, "another-machine/77/1")
