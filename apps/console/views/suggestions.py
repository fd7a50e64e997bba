""" "Label next": the task's suggestions one at a time, the model's guess pre-selected; a key accepts
it, a number key picks another label. The scoring's progress while it runs (htmx polling)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError
from apps.images.storage import signed_link
from apps.suggestions import selectors as suggestion_selectors
from apps.suggestions import services as suggestion_services
from apps.tasks.models import Task

from .. import selectors
from ..tenancy import page, workspace_view

ACTIVE = ("QUEUED", "RUNNING")
MAX_SKIPPED = 200  # ids carried in the page's address; past that the oldest skips are forgotten


def _skipped(raw: str) -> list[str]:
    ids = []
    for part in (raw or "").split(","):
        try:
            ids.append(str(uuid.UUID(part.strip())))
        except ValueError:
            continue
    return ids[-MAX_SKIPPED:]


def _choices(task: Task, labels: list, guess: dict) -> list[dict]:
    """The task's labels in their usual order (so a number key always means the same label), each
    with the model's probability and whether the guess picks it."""
    probs = {item["id"]: item["prob"] for item in guess.get("labels", [])}
    if task.type == Task.Type.MULTI_LABEL:
        picked = {item["id"] for item in guess.get("best_labels", [])}
    else:
        picked = {guess["best_label"]["id"]} if guess.get("best_label") else set()
    return [
        {
            "id": str(label.pk),
            "name": label.name,
            "prob": probs.get(str(label.pk)),
            "picked": str(label.pk) in picked,
        }
        for label in labels
    ]


def _back(task: Task, skip: list[str]) -> str:
    url = reverse("console:label-next", kwargs={"task_id": task.pk})
    return url + (f"?skip={','.join(skip)}" if skip else "")


@workspace_view
def label_next(request, task_id):
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    skip = _skipped(request.GET.get("skip", ""))
    run, rows = suggestion_selectors.suggestion_list(task=task, count=1, skip=skip)
    latest = suggestion_selectors.suggestion_run_latest(task=task)
    suggestion = rows[0] if rows else None
    context = {
        "task": task,
        "is_detection": task.type == Task.Type.DETECTION,
        "run": latest,
        "active": latest is not None and latest.status in ACTIVE,
        "suggestion": suggestion,
        "skip": ",".join(skip),
        "skip_next": ",".join([*skip, str(suggestion.image_id)]) if suggestion else "",
        "pool_count": suggestion_selectors.pool_images(task=task).count(),
    }
    if suggestion is not None:
        suggestion.image_url = signed_link(suggestion.image.file)
        if task.type == Task.Type.DETECTION:
            context["objects"] = suggestion.guess.get("objects", [])
        else:
            context["choices"] = _choices(task, selectors.task_labels(task=task), suggestion.guess)
    return page(request, "console/label_next.html", context)


@workspace_view
def label_next_progress(request, task_id):
    """The scoring's progress; once it ended, htmx reloads the page to show the suggestions."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    run = suggestion_selectors.suggestion_run_latest(task=task)
    active = run is not None and run.status in ACTIVE
    response = render(
        request, "console/_suggestion_progress.html", {"task": task, "run": run, "active": active}
    )
    if not active:
        response["HX-Refresh"] = "true"
    return response


@require_POST
@workspace_view
def label_next_accept(request, task_id):
    """Store the chosen labels (the guess unless a person picked others), or the guessed boxes."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    image = selectors.image_get(workspace=request.workspace, image_id=request.POST.get("image", ""))
    skip = _skipped(request.POST.get("skip", ""))
    labels = request.POST.getlist("label")
    try:
        stored = suggestion_services.prelabel_accept(task=task, image=image, label_ids=labels or None)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect(_back(task, skip))
    if "labels" in stored:
        messages.success(request, "Labelled: " + ", ".join(item["name"] for item in stored["labels"]) + ".")
    else:
        count = len(stored["objects"])
        messages.success(request, f"Stored {count} box{'es' if count != 1 else ''}.")
    return redirect(_back(task, skip))


@require_POST
@workspace_view
def label_next_refresh(request, task_id):
    """Score the pool again with the deployed version (in the background)."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    try:
        suggestion_services.suggestion_run_start(task=task)
        messages.success(request, "Scoring the pool with the deployed version.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(_back(task, []))
