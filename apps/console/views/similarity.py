""" "Images like this one": the workspace's images nearest to an image by the task's descriptors,
and the descriptor job's progress while it runs (htmx polling), over apps/similarity's services."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError
from apps.images.storage import signed_link
from apps.similarity import selectors as similarity_selectors
from apps.similarity import services as similarity_services
from apps.tasks.models import Task

from .. import selectors
from ..tenancy import page, workspace_view

ACTIVE = ("QUEUED", "RUNNING")
SHOWN = 24  # similar images on the page: two rows of the grid


def _status(task: Task) -> dict:
    status = similarity_selectors.similarity_status(task=task)
    run = status["run"]
    return {**status, "active": run is not None and run.status in ACTIVE}


@workspace_view
def similar_images(request, task_id, image_id):
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    image = selectors.image_get(workspace=request.workspace, image_id=image_id)
    context = {
        "task": task,
        "image": image,
        "image_url": signed_link(image.file),
        "status": _status(task),
        "similar": [],
        "is_detection": task.type == Task.Type.DETECTION,
    }
    if context["status"]["ready"] and not context["is_detection"]:
        try:
            answer = similarity_services.similar_images(task=task, records=[{"_id": image.pk}], k=SHOWN)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            record = answer["records"][0]
            context["similar"] = [
                {
                    "image": row["image"],
                    "distance": row["distance"],
                    "thumb_url": signed_link(row["image"].thumbnail),
                }
                for row in record.get("_similar", [])
            ]
            if record["_status"]["code"] != 200:
                messages.error(request, record["_status"]["text"])
    return page(request, "console/similar.html", context)


@workspace_view
def similar_progress(request, task_id):
    """The descriptor job's progress; once it ended, htmx reloads the page to show the results."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    status = _status(task)
    response = render(request, "console/_similar_progress.html", {"task": task, "status": status})
    if not status["active"]:
        response["HX-Refresh"] = "true"
    return response


@require_POST
@workspace_view
def similar_refresh(request, task_id):
    """Compute the descriptors with the deployed version (in the background)."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    try:
        similarity_services.descriptor_run_start(task=task)
        messages.success(request, "Computing the descriptors of the workspace's images.")
    except DomainError as exc:
        messages.error(request, exc.message)
    back = request.POST.get("image", "")
    if back:
        try:
            image = selectors.image_get(workspace=request.workspace, image_id=back)
            return redirect(
                reverse("console:similar-images", kwargs={"task_id": task.pk, "image_id": image.pk})
            )
        except DomainError:
            pass
    return redirect(reverse("console:task-detail", kwargs={"task_id": task.pk}))
