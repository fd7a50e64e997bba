"""Writes for detection: tasks (on the shared Task model), labels, objects, negative images.

Boxes are validated here, against the stored image they are drawn on: four finite numbers,
``0 <= xmin < xmax <= img_width`` and ``0 <= ymin < ymax <= img_height``.
"""

from __future__ import annotations

import logging
import math

from django.db import transaction

from apps.core.errors import DomainError, NotFoundError
from apps.images.models import TrainingImage
from apps.labels.models import Label
from apps.tasks import services as task_services
from apps.tasks.models import Task

from .models import DEFAULT_COLOR, DetectionLabel, DetectionObject, NegativeImage, ObjectLabel

logger = logging.getLogger(__name__)

MSG_BOX_SHAPE = "data must be a list of four numbers: [xmin, ymin, xmax, ymax]."
MSG_BOX_NOT_FINITE = "data must hold finite numbers; got {data}."
MSG_BOX_ORDER = "data must have xmin < xmax and ymin < ymax; got {data}."
MSG_BOX_OUTSIDE = "The box {data} is not inside the image ({width} x {height} pixels)."
MSG_LABEL_NOT_FOUND = "Detection label not found."
MSG_IMAGE_NOT_FOUND = "Image not found."
MSG_TASK_NOT_FOUND = "Detection task not found."
MSG_RECOGNITION_TASK_NOT_FOUND = "Recognition task not found."
MSG_RECOGNITION_LABEL_NOT_FOUND = "Label not found."
MSG_NOT_A_DETECTION_TASK = "This is not a detection task."
MSG_LABEL_NOT_ON_OBJECT = "The label is not on this object."

_LABEL_FIELDS = ("name", "description", "color", "output_name")


# --------------------------------------------------------------------------- boxes


def box_validate(*, data, width: int, height: int) -> list[float]:
    """``data`` as ``[xmin, ymin, xmax, ymax]`` floats inside a ``width`` x ``height`` image.

    Integers stay integers in JSON (Ximilar answers ints); raises DomainError with the reason.
    """
    if not isinstance(data, list | tuple) or len(data) != 4:
        raise DomainError(MSG_BOX_SHAPE)
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in data):
        raise DomainError(MSG_BOX_SHAPE)
    if not all(math.isfinite(v) for v in data):
        raise DomainError(MSG_BOX_NOT_FINITE.format(data=list(data)))
    xmin, ymin, xmax, ymax = data
    if not (xmin < xmax and ymin < ymax):
        raise DomainError(MSG_BOX_ORDER.format(data=list(data)))
    if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
        raise DomainError(MSG_BOX_OUTSIDE.format(data=list(data), width=width, height=height))
    return [int(v) if float(v).is_integer() else float(v) for v in data]


# --------------------------------------------------------------------------- tasks


def detection_task_create(
    *, workspace, owner, name: str, description: str = "", train_time_budget: int | None = None
) -> Task:
    """A detection task: a Task of type ``detection`` (one training lifecycle for every kind)."""
    return task_services.task_create(
        workspace=workspace,
        owner=owner,
        name=name,
        type=Task.Type.DETECTION,
        description=description or "",
        train_time_budget=train_time_budget,
    )


def _same_workspace(task: Task, label: DetectionLabel) -> None:
    if label.workspace_id != task.workspace_id:
        raise NotFoundError(MSG_LABEL_NOT_FOUND)


def detection_label_attach(*, task: Task, label: DetectionLabel) -> Task:
    """Attach a detection label of the task's workspace to the task (idempotent)."""
    _same_workspace(task, label)
    label.tasks.add(task)
    return task


def detection_label_detach(*, task: Task, label: DetectionLabel) -> Task:
    """Detach a label from the task (idempotent); the label and its objects stay."""
    _same_workspace(task, label)
    label.tasks.remove(task)
    return task


def detection_task_add_negative_image(*, task: Task, image: TrainingImage) -> Task:
    """Mark an image of the task's workspace as a negative (background) image of the task."""
    if image.workspace_id != task.workspace_id:
        raise NotFoundError(MSG_IMAGE_NOT_FOUND)
    NegativeImage.objects.get_or_create(task=task, image=image)
    return task


def detection_task_remove_negative_image(*, task: Task, image: TrainingImage) -> Task:
    NegativeImage.objects.filter(task=task, image=image).delete()
    return task


# --------------------------------------------------------------------------- labels


def detection_label_create(
    *,
    workspace,
    name: str,
    description: str = "",
    color: str | None = None,
    output_name: str = "",
) -> DetectionLabel:
    """A workspace-level detection label; ``color`` defaults to ``#FFFFFF``."""
    return DetectionLabel.objects.create(
        workspace=workspace,
        name=name,
        description=description or "",
        color=color or DEFAULT_COLOR,
        output_name=output_name or "",
    )


def detection_label_update(*, label: DetectionLabel, data: dict) -> DetectionLabel:
    changed = []
    for field in _LABEL_FIELDS:
        if field in data:
            value = data[field]
            if value is None:
                value = DEFAULT_COLOR if field == "color" else ""
            setattr(label, field, value)
            changed.append(field)
    if changed:
        label.save(update_fields=changed)
    return label


def detection_label_delete(*, label: DetectionLabel) -> None:
    """Delete a label and, in the cascade, every object drawn with it."""
    label.delete()


def detection_label_link_task(*, label: DetectionLabel, task: Task, link: bool) -> DetectionLabel:
    """Link (or unlink) a recognition task of the label's workspace to the label."""
    if task.workspace_id != label.workspace_id or task.type == Task.Type.DETECTION:
        raise NotFoundError(MSG_RECOGNITION_TASK_NOT_FOUND)
    if link:
        label.recognition_tasks.add(task)
    else:
        label.recognition_tasks.remove(task)
    return label


# --------------------------------------------------------------------------- objects


@transaction.atomic
def detection_object_create(
    *, label: DetectionLabel, image: TrainingImage, data, meta_data: dict | None = None
) -> DetectionObject:
    """A box of ``label`` on ``image`` (same workspace), validated against the stored image."""
    if label.workspace_id != image.workspace_id:
        raise NotFoundError(MSG_LABEL_NOT_FOUND)
    box = box_validate(data=data, width=image.img_width, height=image.img_height)
    return DetectionObject.objects.create(
        workspace_id=image.workspace_id,
        detection_label=label,
        image=image,
        data=box,
        meta_data=meta_data or {},
    )


@transaction.atomic
def detection_object_update(
    *,
    obj: DetectionObject,
    label: DetectionLabel | None = None,
    image: TrainingImage | None = None,
    data=None,
    meta_data: dict | None = None,
    set_meta_data: bool = False,
) -> DetectionObject:
    """Change an object's label, image, box or meta data; the box is checked against its image."""
    if label is not None:
        if label.workspace_id != obj.workspace_id:
            raise NotFoundError(MSG_LABEL_NOT_FOUND)
        obj.detection_label = label
    if image is not None:
        if image.workspace_id != obj.workspace_id:
            raise NotFoundError(MSG_IMAGE_NOT_FOUND)
        obj.image = image
    if data is not None or image is not None:
        obj.data = box_validate(
            data=obj.data if data is None else data, width=obj.image.img_width, height=obj.image.img_height
        )
    if set_meta_data:
        obj.meta_data = meta_data or {}
    obj.save()
    return obj


def detection_object_delete(*, obj: DetectionObject) -> None:
    obj.delete()


def _recognition_label(obj: DetectionObject, label: Label) -> Label:
    if label.workspace_id != obj.workspace_id:
        raise NotFoundError(MSG_RECOGNITION_LABEL_NOT_FOUND)
    return label


def detection_object_label_set(
    *, obj: DetectionObject, label: Label, value: float | None = None, must_exist: bool = False
) -> DetectionObject:
    """Put a recognition label (with a value for value labels) on an object, or change its value."""
    _recognition_label(obj, label)
    if must_exist:
        if not ObjectLabel.objects.filter(object=obj, label=label).update(value=value):
            raise DomainError(MSG_LABEL_NOT_ON_OBJECT)
        return obj
    ObjectLabel.objects.update_or_create(object=obj, label=label, defaults={"value": value})
    return obj


def detection_object_label_remove(*, obj: DetectionObject, label: Label) -> DetectionObject:
    _recognition_label(obj, label)
    ObjectLabel.objects.filter(object=obj, label=label).delete()
    return obj
