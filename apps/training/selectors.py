"""Reads for training: model versions for the API and the lifecycle. What a task trains on is its
kind's (apps/recognition/selectors.py, apps/detection/selectors.py)."""

from __future__ import annotations

from django.db.models import BooleanField, Case, F, QuerySet, Value, When

from apps.tasks.models import Task

from .models import ModelVersion

ACTIVE_STATUSES = (ModelVersion.Status.QUEUED, ModelVersion.Status.IN_TRAINING)

# The states of a version's INT8 attempt before it ends (``metrics["serving"]["int8"]``).
INT8_PENDING, INT8_RUNNING = "pending", "running"


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


def model_version_split_files(*, version: ModelVersion) -> tuple[list[str], list[str]]:
    """Storage names of the images of the version's recorded split: (training side, test side), in
    the split's order; images deleted since the training are left out."""
    from apps.images.models import TrainingImage

    split = version.split or {}
    train_ids, test_ids = split.get("train") or [], split.get("test") or []
    files = dict(
        TrainingImage.objects.filter(
            pk__in=[*train_ids, *test_ids], workspace_id=version.workspace_id
        ).values_list("pk", "file")
    )
    files = {str(pk): name for pk, name in files.items()}
    return [files[i] for i in train_ids if i in files], [files[i] for i in test_ids if i in files]


def model_version_serving_pending(version: ModelVersion) -> bool:
    """Whether the version's INT8 attempt (apps/training/services.py) has not ended yet."""
    return ((version.metrics or {}).get("serving") or {}).get("int8") in (INT8_PENDING, INT8_RUNNING)
