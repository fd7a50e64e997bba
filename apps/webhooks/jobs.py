"""Celery job of apps/webhooks: one attempt of a delivery, and the retries after it.

A delivery that fails (no answer, or an answer that is not 2xx) is tried again with exponential
backoff: ``VF_WEBHOOKS_RETRY_BASE_S`` after the first attempt, then twice as long each time, up to
``VF_WEBHOOKS_MAX_ATTEMPTS`` attempts in all; then it is FAILED. With the defaults (30 s, 5
attempts) the retries come 30 s, 1, 2 and 4 min apart: a receiver restarting or being deployed for
up to about 7 minutes still gets the event. An address the guard refuses, or a redirect, fails at
once: trying again would not change it. A retry is a new message with a countdown (Celery's own
``retry``), so no worker sleeps through the wait.

Delivery is at least once: a worker that dies after the POST and before recording it makes the
job run again (``acks_late``), and the receiver sees the same delivery id twice.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import connection

from . import services
from .job_names import DELIVER_JOB, SWEEP_DELIVERIES_JOB

logger = logging.getLogger(__name__)


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...): base x 2^(attempt - 1)."""
    return float(settings.VF_WEBHOOKS_RETRY_BASE_S) * 2 ** (attempt - 1)


@shared_task(
    name=DELIVER_JOB,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,  # the attempts are counted on the delivery, against VF_WEBHOOKS_MAX_ATTEMPTS
)
def deliver_webhook(self, delivery_id: str):
    """Attempt delivery ``delivery_id``; schedule the next attempt, or give it up."""
    outcome = services.webhook_delivery_attempt(delivery_id=delivery_id)
    if outcome is None or outcome.delivered:
        return
    if outcome.retryable and outcome.number < settings.VF_WEBHOOKS_MAX_ATTEMPTS:
        delay = retry_delay(outcome.number)
        services.webhook_delivery_retry_later(delivery_id=delivery_id, delay=delay)
        # Returned, not raised: the worker has published the retry and acknowledges this message;
        # with jobs inline (eager: tests) Celery runs a returned retry at once, with no wait.
        return self.retry(countdown=delay, throw=False)
    services.webhook_delivery_fail(delivery_id=delivery_id)
    logger.warning(
        "webhook delivery %s failed after %d attempt(s): %s", delivery_id, outcome.number, outcome.error
    )


@shared_task(name=SWEEP_DELIVERIES_JOB, ignore_result=True)
def sweep_stranded_deliveries() -> list[str]:
    """Periodic (celery beat, beside the trainings' sweep): queue again the deliveries whose message
    was lost, e.g. an event that happened while the broker was down."""
    requeued = services.webhook_deliveries_requeue_stranded()
    if requeued:
        logger.info("webhook sweep: queued %d stranded deliveries again", len(requeued))
    return [str(pk) for pk in requeued]


@worker_ready.connect
def sweep_deliveries_when_a_worker_starts(**_kwargs) -> None:
    """A worker that starts (often after the broker or the worker was down) sends what waited."""
    try:
        sweep_stranded_deliveries()
    except Exception:
        logger.exception("webhook sweep at worker start failed")
    finally:
        connection.close()  # the worker's main process is not a job: no connection across forks
