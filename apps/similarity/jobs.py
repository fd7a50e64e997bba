"""Celery job of apps/similarity: describe a workspace's images with a task's version (one run)."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from apps.training.services import failure_reason

from . import services
from .job_names import DESCRIBE_JOB

logger = logging.getLogger(__name__)

MSG_TIME_LIMIT = "Computing the descriptors exceeded its time limit."


@shared_task(name=DESCRIBE_JOB, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def describe_images(run_id: str) -> None:
    """Run ``run_id``: safe to run twice (a finished run is skipped, described images are not
    described again); any error fails the run with the reason, so its progress never hangs."""
    try:
        services.descriptor_run_execute(run_id=run_id)
    except SoftTimeLimitExceeded:
        services.descriptor_run_fail(run_id=run_id, reason=MSG_TIME_LIMIT)
    except Exception as exc:
        logger.exception("descriptor run %s failed", run_id)
        services.descriptor_run_fail(run_id=run_id, reason=failure_reason(exc)[:2000])
