"""Celery jobs of apps/training: train one model version, try INT8 for a trained one, sweep versions
left by dead workers.

Jobs take ids, call the services in apps/training/services.py and own the failure handling; the
e-mails go out from here, after the services' transactions committed.

A worker that is told to stop (SIGTERM or Ctrl-C: a deploy) lets a running training go on for
VF_WORKER_SHUTDOWN_GRACE seconds; then the pool process training it gets SIGTERM, hands its
version back to the queue (``model_version_release``) and exits. A pool process that gets SIGTERM
itself (systemd and ``kill`` of the process group signal every process) does the same at once.
So a deploy never leaves a version to wait for the sweep, and never costs it an attempt.
(billiard's SIGTERM handler in a pool process raises SystemExit in the running job, which is how
the job learns of it: ``billiard.common.terminate_handler_fired``.)
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from billiard.common import terminate_handler_fired
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_ready, worker_shutting_down
from django.conf import settings
from django.db import connection

from apps.core.errors import DATABASE_UNAVAILABLE

from . import notifications
from . import services as training
from .job_names import INT8_JOB, SWEEP_JOB, TRAIN_JOB

logger = logging.getLogger(__name__)

MSG_RELEASE_STOPPING = "its worker is stopping"
MSG_RELEASE_DATABASE = "the database went away during the training"
MSG_INT8_TIME_LIMIT = "The INT8 attempt exceeded its time limit; the version is served in FP32."


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
    """Train the next model version (fairly between workspaces; ``version_id`` is the one whose
    queueing sent this message): claim, e-mail, train, e-mail.

    Safe to run twice (a redelivered or swept message): a finished version, or one a live worker
    is training, is skipped. Any error fails the version with the reason; a worker killed
    outright leaves it to the sweep. A worker that stops (SIGTERM) or a database that goes away
    mid-training hands the version back to the queue instead: neither is the training's fault (a
    stop costs no attempt; the database's errors do, so a lasting one ends in FAILED). No Celery
    retries: a retry would train from scratch anyway, and the services requeue.
    """
    patiently = training.with_database_patience
    version = patiently(
        lambda: training.model_version_claim(version_id=version_id, fair=not self.request.is_eager),
        what=f"claiming model version {version_id}",
    )
    if version is None:
        return
    # The message is a wake-up: the version claimed is the fairest one queued, not always the one
    # it names (model_version_claim). Everything below is about the version claimed.
    version_id = str(version.pk)
    if version.train_status == version.Status.FAILED:  # out of attempts
        notifications.training_finished(version=version)
        return
    notifications.training_started(version=version)
    try:
        # In eager mode (tests, CELERY_TASK_ALWAYS_EAGER) the job runs inside the caller's
        # transaction, where a second connection for the heartbeat could not see the row.
        version = training.model_version_train(version=version, heartbeat_thread=not self.request.is_eager)
    except SystemExit:
        if terminate_handler_fired():  # SIGTERM: the pool process is on its way out
            # Once, without waiting for a database that is away: the deploy's deadline runs, and
            # a version left IN_TRAINING is still rescued (a redelivered job takes over, or the sweep).
            connection.close()  # the signal may have cut a query short: hand back on a new connection
            try:
                training.model_version_release(version_id=version_id, reason=MSG_RELEASE_STOPPING)
            except Exception:
                logger.exception("could not hand model version %s back", version_id)
        raise
    except DATABASE_UNAVAILABLE:
        logger.warning("model version %s lost the database during its training", version_id, exc_info=True)
        patiently(
            lambda: training.model_version_release(
                version_id=version_id, reason=MSG_RELEASE_DATABASE, count_attempt=True
            ),
            what=f"handing model version {version_id} back",
        )
        return
    except SoftTimeLimitExceeded:
        version = patiently(
            lambda: training.model_version_fail(version_id=version_id, reason=training.MSG_TIME_LIMIT),
            what=f"failing model version {version_id}",
        )
    except Exception as exc:
        logger.exception("training of model version %s failed", version_id)
        reason = training.failure_reason(exc)
        version = patiently(
            lambda: training.model_version_fail(version_id=version_id, reason=reason),
            what=f"failing model version {version_id}",
        )
    if version is not None:
        notifications.training_finished(version=version)


@shared_task(name=SWEEP_JOB, ignore_result=True)
def sweep_stuck_trainings() -> dict:
    """Periodic (celery beat): requeue or fail versions a dead worker left QUEUED or IN_TRAINING;
    queue again INT8 attempts whose message was lost."""
    result = training.model_versions_sweep()
    try:
        training.model_versions_int8_sweep()
    except Exception:  # the trainings' rescue above must not be undone by this one
        logger.exception("sweep of INT8 attempts failed")
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


@worker_shutting_down.connect
def _bound_the_warm_shutdown(how: str = "", **_kwargs) -> None:
    """In the worker's main process, on SIGTERM or Ctrl-C: Celery's warm shutdown waits for running
    jobs however long they take, and a deploy's deadline (docker stop's 10 s) would then end in
    SIGKILL, leaving the training to the sweep and costing it an attempt. After
    VF_WORKER_SHUTDOWN_GRACE seconds the pool processes still busy get SIGTERM (see the module's
    docstring)."""
    if how != "Warm" or _shutdown_bounded.is_set():  # a second SIGTERM does not restart the clock
        return
    _shutdown_bounded.set()
    timer = threading.Timer(settings.VF_WORKER_SHUTDOWN_GRACE, _stop_busy_pool_processes)
    timer.daemon = True
    timer.start()


_shutdown_bounded = threading.Event()


def _stop_busy_pool_processes() -> None:
    from celery.worker import state

    pids = {request.worker_pid for request in list(state.active_requests) if request.worker_pid}
    pids.discard(os.getpid())  # a solo or threads pool runs jobs in this very process
    for pid in pids:
        logger.warning("shutdown grace over: stopping pool process %s (its job goes back to the queue)", pid)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


@worker_process_init.connect
def _preload_trainer(**_kwargs) -> None:
    """Import the trainer (torch, timm, scikit-learn) when a worker process starts, not in the first
    training: it takes seconds (11 s measured on a busy 2-core machine) of every first train-to-TRAINED."""
    try:
        import ml.recognition.recipe  # noqa: F401
    except Exception:
        logger.exception("could not preload the trainer")


@shared_task(name=INT8_JOB, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def serve_int8(version_id: str) -> None:
    """The INT8 attempt of a version that became TRAINED (queued then): safe to run twice (a
    finished attempt is skipped); any error is recorded on the version, which keeps serving FP32."""
    try:
        training.model_version_serve_int8(version_id=version_id)
    except SoftTimeLimitExceeded:
        training.model_version_int8_fail(version_id=version_id, reason=MSG_INT8_TIME_LIMIT)
    except Exception as exc:
        logger.exception("INT8 attempt of model version %s failed", version_id)
        training.model_version_int8_fail(version_id=version_id, reason=training.failure_reason(exc))
