"""The box editor of a detection task's training image, and the three calls it saves with: create,
update (move, resize, relabel) and delete one box, each through the detection services (which
validate the box against the stored image). With a deployed version the editor also shows the
model's boxes (``box_guess``) as proposals: nothing is stored until a person accepts or adjusts one,
which saves it through the same create call."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError, NotFoundError
from apps.detection import selectors as detection_selectors
from apps.detection import services as detection_services
from apps.images.storage import signed_link
from apps.suggestions import services as suggestion_services
from apps.tasks.models import Task

from .. import selectors
from ..forms import BoxForm
from ..tenancy import page, workspace_view

MSG_NOT_DETECTION = "Boxes are drawn on the images of a detection task."


def _task_and_image(request, task_id, image_id):
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    if task.type != Task.Type.DETECTION:
        raise NotFoundError(MSG_NOT_DETECTION)
    return task, selectors.image_get(workspace=task.workspace_id, image_id=image_id)


def _object(task, image, object_id):
    objects = detection_selectors.detection_object_list(workspaces=[task.workspace_id])
    found = objects.filter(pk=object_id, image=image).first()
    if found is None:
        raise NotFoundError(detection_services.MSG_LABEL_NOT_FOUND)
    return found


def _label(task, form: BoxForm):
    return detection_selectors.detection_label_get(
        workspace=task.workspace_id, label_id=form.cleaned_data["label"]
    )


def _saved(form: BoxForm, save) -> JsonResponse:
    """Validate the box form, then ``save()`` through a detection service: the saved box, or the
    reason it was refused (the form's, or the service's with its status)."""
    if not form.is_valid():
        return JsonResponse({"error": form.errors.as_text()}, status=400)
    try:
        obj = save()
    except DomainError as exc:
        return JsonResponse({"error": exc.message}, status=exc.status_code)
    return JsonResponse({"id": str(obj.pk), "label": str(obj.detection_label_id), "box": obj.data})


@workspace_view
def box_editor(request, task_id, image_id):
    task, image = _task_and_image(request, task_id, image_id)
    following = selectors.image_next(image=image)
    context = {
        "task": task,
        "image": image,
        "image_url": signed_link(image.file),
        "labels": selectors.task_labels(task=task),
        "boxes": selectors.image_boxes(task=task, image=image),
        "next_image": following,
        "has_model": task.production_version >= 1,
    }
    return page(request, "console/boxes.html", context)


@require_POST
@workspace_view
def box_create(request, task_id, image_id):
    task, image = _task_and_image(request, task_id, image_id)
    form = BoxForm(request.POST)
    return _saved(
        form,
        lambda: detection_services.detection_object_create(
            label=_label(task, form), image=image, data=form.box()
        ),
    )


@require_POST
@workspace_view
def box_update(request, task_id, image_id, object_id):
    task, image = _task_and_image(request, task_id, image_id)
    obj = _object(task, image, object_id)
    form = BoxForm(request.POST)
    return _saved(
        form,
        lambda: detection_services.detection_object_update(
            obj=obj, label=_label(task, form), data=form.box()
        ),
    )


@require_POST
@workspace_view
def box_delete(request, task_id, image_id, object_id):
    task, image = _task_and_image(request, task_id, image_id)
    detection_services.detection_object_delete(obj=_object(task, image, object_id))
    return JsonResponse({"deleted": str(object_id)})


@workspace_view
def box_guess(request, task_id, image_id):
    """The deployed version's boxes for the image, as the editor draws proposals: ``{version,
    boxes: [{label, box, prob}]}``; the reason (with its status) when there is no model to ask."""
    task, image = _task_and_image(request, task_id, image_id)
    try:
        guess = suggestion_services.prelabel_guess(task=task, image=image)
    except DomainError as exc:
        return JsonResponse({"error": exc.message}, status=exc.status_code)
    boxes = [
        {"label": found["id"], "box": found["bound_box"], "prob": found["prob"]} for found in guess["objects"]
    ]
    return JsonResponse({"version": guess["version"], "boxes": boxes})
