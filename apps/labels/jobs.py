"""Celery jobs of apps/labels: wiping a label too large to wipe within a request."""

from __future__ import annotations

import logging

from celery import shared_task

from . import services
from .job_names import WIPE_JOB
from .models import Label

logger = logging.getLogger(__name__)


@shared_task(name=WIPE_JOB, acks_late=True, ignore_result=True)
def wipe_label(label_id: str) -> int:
    """Delete the label and its images in committed batches (``services.label_wipe``). Safe to run
    twice: a label already gone is nothing to do, and a half-done wipe is finished."""
    label = Label.objects.filter(pk=label_id).first()
    if label is None:
        return 0
    return services.label_wipe(label=label)
