"""Images of a task: the paged thumbnail grid with its filters, the per-file upload the drop zones
call (one request per file, so each file shows its own progress and error), and bulk actions."""

from __future__ import annotations

from django.contrib import messages
from django.http import JsonResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError
from apps.images import selectors as image_selectors
from apps.images import services as image_services
from apps.images.storage import signed_link
from apps.suggestions import services as suggestion_services
from apps.tasks.models import Task

from .. import selectors
from ..forms import BulkForm, ImageFilterForm, UploadForm
from ..tenancy import page, workspace_view
from ..uploads import upload_limited


def _filter(form: ImageFilterForm, labels: list) -> selectors.ImageFilter:
    if not form.is_valid():
        return selectors.ImageFilter()
    data = form.cleaned_data
    label_ids = {str(label.pk) for label in labels}
    label = str(data["label"]) if data.get("label") and str(data["label"]) in label_ids else None
    test = {"1": True, "0": False}.get(data.get("test") or "")
    return selectors.ImageFilter(
        label=label, test=test, unlabelled=bool(data.get("unlabelled")), pool=bool(data.get("pool"))
    )


@workspace_view
def image_grid(request, task_id):
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    labels = selectors.task_labels(task=task)
    form = ImageFilterForm(request.GET)
    chosen = _filter(form, labels)
    number = form.cleaned_data.get("page") if form.is_valid() else 1
    images = selectors.image_page(task=task, labels=labels, chosen=chosen, number=number or 1)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "task": task,
        "is_detection": task.type == Task.Type.DETECTION,
        "labels": labels,
        "images": images,
        "chosen": chosen,
        "query": query.urlencode(),
        "bulk_form": BulkForm(),
    }
    template = "console/_image_grid.html" if request.htmx else "console/images.html"
    return page(request, template, context)


def _too_large(request, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=413)


@require_POST
@upload_limited(_too_large)
@workspace_view
def image_upload(request, task_id):
    """One file onto a label (or none): JSON ``{id, thumb_url}`` or ``{error}`` with the service's
    status (400 not an image or a duplicate, 413 too large)."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)  # 404: another workspace's
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return JsonResponse({"error": form.errors.as_text()}, status=400)
    data = form.cleaned_data
    label = data.get("label")
    value = data.get("value")
    try:
        raw = image_services.upload_bytes(file=data.get("file"))
        if not label:  # no label: the image joins the task's pool (apps/suggestions)
            image = suggestion_services.pool_image_upload(task=task, data=raw, test_image=data["test_image"])
            return JsonResponse({"id": str(image.pk), "thumb_url": signed_link(image.thumbnail)}, status=201)
        image = image_services.training_image_ingest(
            workspace=request.workspace,
            data=raw,
            label_ids=[label] if label and value is None else [],
            values={label: value} if label and value is not None else None,
            test_image=data["test_image"],
        )
    except DomainError as exc:
        return JsonResponse({"error": exc.message}, status=exc.status_code)
    return JsonResponse({"id": str(image.pk), "thumb_url": signed_link(image.thumbnail)}, status=201)


@require_POST
@workspace_view
def image_bulk(request, task_id):
    """Label, unlabel, mark or unmark as test, or delete the selected images of the workspace."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    form = BulkForm(request.POST)
    # Back to the grid as it was filtered; the query is parsed and re-encoded, never passed through.
    query = QueryDict(request.POST.get("query", "")).urlencode()
    back = reverse("console:image-grid", kwargs={"task_id": task.pk}) + (f"?{query}" if query else "")
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return redirect(back)
    data = form.cleaned_data
    ids, action, label = data["images"], data["action"], data.get("label")
    try:
        if action == "delete":
            scoped = image_selectors.training_image_list(workspace=request.workspace).filter(pk__in=ids)
            count = image_services.training_image_delete_many(queryset=scoped)
        else:
            count = image_services.training_image_bulk_update(
                workspace=request.workspace,
                image_ids=ids,
                add_label_ids=[label] if action == "label" else [],
                remove_label_ids=[label] if action == "unlabel" else [],
                test_image={"test": True, "untest": False}.get(action),
            )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    messages.success(request, f"{dict(BulkForm.ACTIONS)[action]}: {count} image(s).")
    return redirect(back)
