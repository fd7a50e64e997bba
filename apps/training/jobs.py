"""Celery jobs of apps/training: train one model version, sweep versions left by dead workers.

Jobs take ids, call the services in apps/training/services.py and own the failure handling; the
e-mails go out from here, after the services' transactions committed.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_ready
from django.conf import settings
from django.db import connection

from . import notifications
from . import services as training
from .job_names import SWEEP_JOB, TRAIN_JOB

logger = logging.getLogger(__name__)


@shared_task(
    name=TRAIN_JOB,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.VF_TRAINING_SOFT_TIME_LIMIT,
    time_limit=settings.VF_TRAINING_TIME_LIMIT,
    ignore_result=True,
)
def train_model_version(self, version_id: str) -> None:
    """Train model version ``version_id``: claim, e-mail, train, e-mail.

    Safe to run twice (a redelivered or swept message): a finished version, or one a live worker
    is training, is skipped. Any error fails the version with the reason; a worker killed
    outright leaves it to the sweep. No Celery retries: a retry would train from scratch anyway,
    and the sweep owns requeueing.
    """
    version = training.model_version_claim(version_id=version_id)
    if version is None:
        return
    if version.train_status == version.Status.FAILED:  # out of attempts
        notifications.training_finished(version=version)
        return
    notifications.training_started(version=version)
    try:
        # In eager mode (tests, CELERY_TASK_ALWAYS_EAGER) the job runs inside the caller's
        # transaction, where a second connection for the heartbeat could not see the row.
        version = training.model_version_train(version=version, heartbeat_thread=not self.request.is_eager)
    except SoftTimeLimitExceeded:
        version = training.model_version_fail(version_id=version_id, reason=training.MSG_TIME_LIMIT)
    except Exception as exc:
        logger.exception("training of model version %s failed", version_id)
        version = training.model_version_fail(version_id=version_id, reason=training.failure_reason(exc))
    if version is not None:
        notifications.training_finished(version=version)


@shared_task(name=SWEEP_JOB, ignore_result=True)
def sweep_stuck_trainings() -> dict:
    """Periodic (celery beat): requeue or fail versions a dead worker left QUEUED or IN_TRAINING."""
    result = training.model_versions_sweep()
    for version in result["failed"]:
        notifications.training_finished(version=version)
    if result["requeued"] or result["failed"]:
        logger.info(
            "sweep: requeued %d, failed %d model versions", len(result["requeued"]), len(result["failed"])
        )
    return {
        "requeued": [str(pk) for pk in result["requeued"]],
        "failed": [str(v.pk) for v in result["failed"]],
    }


@worker_ready.connect
def sweep_when_a_worker_starts(**_kwargs) -> None:
    """A worker that starts (often: restarts after a crash) rescues what the dead one left at once,
    instead of waiting for the next beat."""
    try:
        sweep_stuck_trainings()
    except Exception:
        logger.exception("sweep at worker start failed")
    finally:
        # The worker's main process is not a job: do not keep its connection open across forks.
        connection.close()
    _preload_trainer()  # the solo pool trains in this process


@worker_process_init.connect
def _preload_trainer(**_kwargs) -> None:
    """Import the trainer (torch, timm, scikit-learn) when a worker process starts, not in the first
    training: it takes seconds (11 s measured on a busy 2-core machine) of every first train-to-TRAINED."""
    try:
        import ml.recognition.recipe  # noqa: F401
    except Exception:
        logger.exception("could not preload the trainer")
