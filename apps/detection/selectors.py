"""Reads for detection: every list costs a constant number of queries (prefetches, no N+1)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.core.errors import NotFoundError
from apps.core.ids import parse_uuid
from apps.images.models import TrainingImage
from apps.labels.models import Label
from apps.tasks.models import Task
from apps.workspaces.models import Workspace

from .models import DetectionLabel, DetectionObject, NegativeImage, ObjectLabel
from .services import (
    MSG_IMAGE_NOT_FOUND,
    MSG_LABEL_NOT_FOUND,
    MSG_RECOGNITION_LABEL_NOT_FOUND,
    MSG_RECOGNITION_TASK_NOT_FOUND,
    MSG_TASK_NOT_FOUND,
)


def _get(queryset: QuerySet, pk, message: str):
    uid = parse_uuid(pk)
    found = queryset.filter(pk=uid).first() if uid else None
    if found is None:
        raise NotFoundError(message)
    return found


def detection_task_list(*, workspace) -> QuerySet:
    """The workspace's detection tasks, oldest first, with their labels prefetched."""
    labels = DetectionLabel.objects.only("id", "name", "color", "output_name").order_by("created", "id")
    return (
        Task.objects.filter(workspace=workspace, type=Task.Type.DETECTION)
        .prefetch_related(Prefetch("detection_labels", queryset=labels))
        .order_by("created", "id")
    )


def detection_task_get(*, workspace, task_id) -> Task:
    return _get(detection_task_list(workspace=workspace), task_id, MSG_TASK_NOT_FOUND)


def detection_label_list(*, workspace) -> QuerySet:
    recognition = Task.objects.only("id", "name").order_by("created", "id")
    return (
        DetectionLabel.objects.filter(workspace=workspace)
        .prefetch_related(Prefetch("recognition_tasks", queryset=recognition))
        .order_by("created", "id")
    )


def detection_label_get(*, workspace, label_id) -> DetectionLabel:
    return _get(detection_label_list(workspace=workspace), label_id, MSG_LABEL_NOT_FOUND)


def recognition_task_get(*, workspace, task_id) -> Task:
    queryset = Task.objects.filter(workspace=workspace).exclude(type=Task.Type.DETECTION)
    return _get(queryset, task_id, MSG_RECOGNITION_TASK_NOT_FOUND)


def recognition_label_get(*, workspace, label_id) -> Label:
    return _get(Label.objects.filter(workspace=workspace), label_id, MSG_RECOGNITION_LABEL_NOT_FOUND)


def image_get(*, workspace, image_id) -> TrainingImage:
    return _get(TrainingImage.objects.filter(workspace=workspace), image_id, MSG_IMAGE_NOT_FOUND)


def image_get_among(*, workspaces, image_id) -> TrainingImage:
    """An image of one of ``workspaces`` (objects are created where their image is)."""
    queryset = TrainingImage.objects.filter(workspace__in=workspaces).select_related("workspace")
    return _get(queryset, image_id, MSG_IMAGE_NOT_FOUND)


def detection_object_list(*, workspaces: QuerySet | list[Workspace]) -> QuerySet:
    """Objects of the given workspaces with label, image and recognition labels in fixed queries."""
    return (
        DetectionObject.objects.filter(workspace__in=workspaces)
        .select_related("detection_label", "image")
        .prefetch_related(
            Prefetch(
                "object_labels",
                queryset=ObjectLabel.objects.select_related("label").order_by("label__name", "label_id"),
            )
        )
        .order_by("created", "id")
    )


def task_training_objects(*, task: Task) -> tuple[list[DetectionLabel], dict, list[TrainingImage]]:
    """What a detection task trains on: its labels (stable order), ``{image: [(label index, box)]}``
    for every image with an object of those labels, and the images the task was given as
    negatives (no boxes: background)."""
    labels = list(task.detection_labels.order_by("created", "id"))
    index = {label.pk: i for i, label in enumerate(labels)}
    boxes: dict[TrainingImage, list] = {}
    objects = (
        DetectionObject.objects.filter(detection_label__in=labels, workspace_id=task.workspace_id)
        .select_related("image")
        .order_by("image_id", "created", "id")
    )
    for obj in objects:
        boxes.setdefault(obj.image, []).append((index[obj.detection_label_id], obj.data))
    negatives = [
        n.image
        for n in NegativeImage.objects.filter(task=task).select_related("image").order_by("image_id")
        if n.image not in boxes
    ]
    return labels, boxes, negatives
