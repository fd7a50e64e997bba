"""Reads for training: model versions for the API and the lifecycle. What a task trains on is its
kind's (apps/recognition/selectors.py, apps/detection/selectors.py)."""

from __future__ import annotations

from django.db.models import BooleanField, Case, F, QuerySet, Value, When

from apps.tasks.models import Task

from .models import ModelVersion

ACTIVE_STATUSES = (ModelVersion.Status.QUEUED, ModelVersion.Status.IN_TRAINING)


def model_version_list(*, workspace=None) -> QuerySet[ModelVersion]:
    """Versions with their task joined and ``is_production`` annotated: constant queries per page.

    The caller (the tenancy base viewset) filters by workspace; ``workspace`` narrows it here too
    when given.
    """
    qs = ModelVersion.objects.select_related("task").annotate(
        is_production=Case(
            When(task__production_version=F("version"), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        )
    )
    if workspace is not None:
        qs = qs.filter(workspace=workspace)
    return qs.order_by("-created", "id")


def model_version_active(*, task: Task) -> ModelVersion | None:
    """The task's QUEUED or IN_TRAINING version, if any."""
    return task.versions.filter(train_status__in=ACTIVE_STATUSES).order_by("-version").first()
