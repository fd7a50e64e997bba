"""Reads of the labelling loop: a task's pool, its latest scoring run and the next suggestions."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.images.selectors import training_image_list, training_image_pool
from apps.tasks.models import Task

from .models import Suggestion, SuggestionRun


def pool_images(*, task: Task) -> QuerySet:
    """The images of the task's pool, newest first (as ``training-image/?pool=<task id>``)."""
    return training_image_pool(training_image_list(workspace=task.workspace), task_id=task.pk).filter(
        workspace_id=task.workspace_id
    )


def suggestion_run_latest(*, task: Task) -> SuggestionRun | None:
    """The task's most recent scoring run, whatever its status."""
    return SuggestionRun.objects.filter(task=task).order_by("-created").first()


def suggestion_run_active(*, task: Task) -> SuggestionRun | None:
    """A run of the task that is queued or scoring now."""
    active = (SuggestionRun.Status.QUEUED, SuggestionRun.Status.RUNNING)
    return SuggestionRun.objects.filter(task=task, status__in=active).order_by("-created").first()


def suggestion_run_done(*, task: Task) -> SuggestionRun | None:
    """The task's latest finished run: the one whose suggestions are served."""
    return (
        SuggestionRun.objects.filter(task=task, status=SuggestionRun.Status.DONE).order_by("-created").first()
    )


def suggestion_list(*, task: Task, count: int, skip: list | tuple = ()) -> tuple[SuggestionRun | None, list]:
    """The next ``count`` suggestions of the task's latest finished run, in the run's order, leaving
    out images that left the pool since (labelled, deleted) and the ``skip`` ids. One query for
    the run, one for the page: the pool condition is an ``EXISTS`` per row."""
    run = suggestion_run_done(task=task)
    if run is None:
        return None, []
    still = pool_images(task=task).values("pk")
    rows = (
        Suggestion.objects.filter(run=run, image__in=still)
        .exclude(image_id__in=list(skip))
        .select_related("image")
        .order_by("rank")[:count]
    )
    return run, list(rows)
