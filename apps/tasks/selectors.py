"""Reads for tasks: the attached labels come in one prefetch, whatever the number of tasks."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.core.errors import NotFoundError
from apps.core.ids import parse_uuid
from apps.labels.models import Label

from .models import RECOGNITION_TYPES, Task

MSG_TASK_NOT_FOUND = "Task not found."


def task_list(*, workspace) -> QuerySet:
    """The workspace's recognition tasks, oldest first, with their labels prefetched.

    Detection tasks are listed under ``detection/v2/task/`` (apps/detection), not here."""
    labels = Label.objects.only("id", "name", "type").order_by("created", "id")
    return (
        Task.objects.filter(workspace=workspace, type__in=RECOGNITION_TYPES)
        .prefetch_related(Prefetch("labels", queryset=labels))
        .order_by("created", "id")
    )


def task_get(*, workspace, task_id) -> Task:
    """One task of the workspace; NotFoundError for a bad id or another workspace's task."""
    task_uuid = parse_uuid(task_id)
    task = task_list(workspace=workspace).filter(pk=task_uuid).first() if task_uuid else None
    if task is None:
        raise NotFoundError(MSG_TASK_NOT_FOUND)
    return task
