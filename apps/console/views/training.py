"""A version's page (live progress, candidates, metrics, evaluation), its download, and "try it"."""

from __future__ import annotations

import base64

from django.shortcuts import render
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError
from apps.images.services import upload_bytes
from apps.inference.services import task_predict
from apps.tasks.models import Task
from apps.training.views import download_response

from .. import charts, selectors
from ..forms import TryForm
from ..tenancy import page, workspace_view
from ..uploads import upload_limited

ACTIVE = ("QUEUED", "IN_TRAINING")
# The dropped image is shown back as a data: URL; only with an image type a browser renders as such.
SHOWN_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"}


def _metrics_context(version) -> dict:
    metrics = version.metrics or {}
    return {
        "metrics": metrics,
        "candidates": metrics.get("candidates") or [],
        "per_label": metrics.get("per_label") or [],
        "heatmap": charts.heatmap(metrics.get("confusion_matrix")),
        "label_matrices": charts.label_matrices(metrics.get("confusion_matrix")),
        "curves": charts.curves(metrics.get("history")),
    }


def _evaluation(version, task: Task) -> list[dict]:
    rows = selectors.evaluation_rows(version=version)
    if task.type == Task.Type.DETECTION:
        for row in rows:
            size = (row["image"].img_width, row["image"].img_height)
            for key in ("true_objects", "predicted_objects"):
                for box in row.get(key) or []:
                    box["style"] = charts.box_style(box["bound_box"], *size)
    return rows


@workspace_view
def version_detail(request, task_id, version: int):
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    found = selectors.version_get(task=task, version=version)
    context = {
        "task": task,
        "version": found,
        "active": found.train_status in ACTIVE,
        "is_detection": task.type == Task.Type.DETECTION,
        "evaluation": _evaluation(found, task) if found.train_status == "TRAINED" else [],
        **_metrics_context(found),
    }
    return page(request, "console/version_detail.html", context)


@workspace_view
def version_progress(request, task_id, version: int):
    """The progress partial htmx polls while the version trains; once it is done the page reloads
    (``HX-Refresh``) to show the metrics."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    found = selectors.version_get(task=task, version=version)
    active = found.train_status in ACTIVE
    response = render(request, "console/_progress.html", {"task": task, "version": found, "active": active})
    if request.htmx and not active:
        response["HX-Refresh"] = "true"
    return response


@workspace_view
def version_download(request, task_id, version: int):
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    found = selectors.version_get(task=task, version=version)
    try:
        return download_response(version=found, artifact="bundle")
    except DomainError as exc:
        return page(request, "console/error.html", {"message": exc.message}, status=exc.status_code)


def _try_too_large(request, message: str):
    return render(request, "console/_try_result.html", {"error": message}, status=413)


@require_POST
@upload_limited(_try_too_large)
@workspace_view
def task_try(request, task_id):
    """Run one dropped image through the deployed (or the chosen) version: a partial with the
    labels and probabilities, or the boxes drawn over the image."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    form = TryForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "console/_try_result.html", {"error": form.errors.as_text()}, status=400)
    try:
        data = upload_bytes(file=form.cleaned_data["image"])
        encoded = base64.b64encode(data).decode()
        result = task_predict(task=task, records=[{"_base64": encoded}], version=form.cleaned_data["version"])
    except DomainError as exc:
        return render(request, "console/_try_result.html", {"error": exc.message}, status=exc.status_code)
    record = result["records"][0]
    if record["_status"]["code"] != 200:
        context = {"error": record["_status"]["text"]}
        return render(request, "console/_try_result.html", context, status=record["_status"]["code"])
    objects = record.get("_objects") or []  # templates cannot read names that start with "_"
    for found in objects:
        found["style"] = charts.box_style(found["bound_box"], record["_width"], record["_height"])
    shown_type = form.cleaned_data["image"].content_type
    shown_type = shown_type if shown_type in SHOWN_TYPES else "image/jpeg"
    context = {
        "record": record,
        "objects": objects,
        "version": result["version"],
        "image_src": f"data:{shown_type};base64,{encoded}",
        "is_detection": task.type == Task.Type.DETECTION,
        "is_regression": task.type == Task.Type.REGRESSION,
    }
    return render(request, "console/_try_result.html", context)
