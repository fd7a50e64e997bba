"""Celery job of apps/suggestions: score a task's pool (one run) with its deployed version."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from apps.training.services import failure_reason

from . import services
from .job_names import SCORE_JOB

logger = logging.getLogger(__name__)

MSG_TIME_LIMIT = "Scoring the pool exceeded its time limit."


@shared_task(name=SCORE_JOB, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def score_pool(run_id: str) -> None:
    """Score run ``run_id``: safe to run twice (a finished run is skipped); any error fails the run
    with the reason, so its progress never hangs."""
    try:
        services.suggestion_run_execute(run_id=run_id)
    except SoftTimeLimitExceeded:
        services.suggestion_run_fail(run_id=run_id, reason=MSG_TIME_LIMIT)
    except Exception as exc:
        logger.exception("scoring run %s failed", run_id)
        services.suggestion_run_fail(run_id=run_id, reason=failure_reason(exc)[:2000])
