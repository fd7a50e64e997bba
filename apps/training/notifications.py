"""E-mails to a task's owner about its trainings, through Django's mail settings.

A mail that cannot be sent is logged and forgotten: it never fails or retries a training.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail

from apps.workspaces.models import Membership

from .models import ModelVersion

logger = logging.getLogger(__name__)


def _model_url(version: ModelVersion) -> str:
    return f"{settings.VF_PUBLIC_URL.rstrip('/')}/recognition/v2/model/{version.pk}"


def _send(version: ModelVersion, subject: str, body: str) -> bool:
    owner = version.task.owner
    if owner is None or not owner.email:
        return False
    # A task's owner removed from its workspace no longer hears about it: the mail would tell an
    # outsider about the workspace's data.
    if not Membership.objects.filter(workspace_id=version.task.workspace_id, user=owner).exists():
        return False
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [owner.email], fail_silently=False)
    except Exception:
        logger.exception("could not e-mail %s about model version %s", owner.email, version.pk)
        return False
    return True


def training_started(*, version: ModelVersion) -> bool:
    """Tell the owner that version N of their task started training."""
    task = version.task
    subject = f"Training started: {task.name} (version {version.version})"
    body = (
        f"Version {version.version} of your task “{task.name}” started training.\n"
        f"You will get another e-mail when it ends.\n\n"
        f"Follow it: {_model_url(version)}\n"
    )
    return _send(version, subject, body)


def training_finished(*, version: ModelVersion) -> bool:
    """Tell the owner how the training ended: TRAINED with the accuracy, or FAILED with the reason."""
    task = version.task
    if version.train_status == ModelVersion.Status.TRAINED:
        metrics = version.metrics or {}
        if version.accuracy is not None:
            score = f"Accuracy on the test images: {version.accuracy:.1%}."
        elif metrics.get("mae") is not None:
            score = f"Mean absolute error on the test images: {metrics['mae']:.4g}."
        elif metrics.get("map50") is not None:  # object detection
            score = f"mAP@0.5 on the test images: {metrics['map50']:.3f}."
        else:
            score = "No test images were available to measure it."
        deployed = (
            "It is now the production version."
            if task.production_version == version.version
            else f"Version {task.production_version} stays in production; deploy this one when you are ready."
        )
        subject = f"Training finished: {task.name} (version {version.version})"
        body = f"Version {version.version} of your task “{task.name}” is trained.\n{score}\n{deployed}\n\n"
    else:
        reason = (version.metrics or {}).get("error") or "unknown error"
        subject = f"Training failed: {task.name} (version {version.version})"
        body = (
            f"Version {version.version} of your task “{task.name}” could not be trained.\n"
            f"Reason: {reason}\n\n"
        )
    return _send(version, subject, body + f"Details: {_model_url(version)}\n")
