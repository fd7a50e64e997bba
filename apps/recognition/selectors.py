"""Reads for image recognition's trainer: a task's labels in a stable order, how many images carry
each, and the labelled examples it trains on."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count

from apps.images.models import ImageLabel
from apps.labels.models import Label
from apps.tasks.models import Task


def task_training_labels(*, task: Task) -> tuple[list[Label], list[Label]]:
    """(output labels in a stable order, negative labels) of a task.

    A multi_label task's automatic negative label ("none of the tags") is not an output: its
    images train as all-negative examples.
    """
    labels = list(task.labels.order_by("created", "id"))
    negative = [label for label in labels if label.negative_for_task_id == task.id]
    outputs = [label for label in labels if label.negative_for_task_id != task.id]
    return outputs, negative


def label_image_counts(*, task: Task, labels: list[Label]) -> dict:
    """label id -> number of the task workspace's images carrying it (with a value for ``value``
    labels)."""
    rows = ImageLabel.objects.filter(label__in=labels, image__workspace_id=task.workspace_id)
    if task.type == Task.Type.REGRESSION:
        rows = rows.filter(value__isnull=False)
    counts = dict(rows.values_list("label_id").annotate(n=Count("image_id", distinct=True)))
    return {label.id: counts.get(label.id, 0) for label in labels}


@dataclass
class TrainingExample:
    image_id: str
    file: str
    test_image: bool
    label_ids: list = field(default_factory=list)  # output label ids (sorted), or [] for negatives
    value: float | None = None


def task_training_examples(
    *, task: Task, outputs: list[Label], negative: list[Label]
) -> list[TrainingExample]:
    """Every image of the task's workspace that carries one of its labels, once, with its targets.

    Ordered by image id so the same images always give the same list.
    """
    wanted = [label.id for label in outputs] + [label.id for label in negative]
    negative_ids = {label.id for label in negative}
    rows = (
        ImageLabel.objects.filter(label_id__in=wanted, image__workspace_id=task.workspace_id)
        .values_list("image_id", "image__file", "image__test_image", "label_id", "value")
        .order_by("image_id", "label_id")
    )
    by_image: dict = {}
    labels_of: dict = defaultdict(list)
    for image_id, file, test_image, label_id, value in rows:
        example = by_image.get(image_id)
        if example is None:
            example = by_image[image_id] = TrainingExample(str(image_id), file, test_image)
        if label_id in negative_ids:
            continue
        labels_of[image_id].append(label_id)
        if value is not None and example.value is None:
            example.value = value
    order = {label.id: i for i, label in enumerate(outputs)}
    for image_id, example in by_image.items():
        example.label_ids = sorted(labels_of.get(image_id, []), key=order.__getitem__)
    return [by_image[key] for key in sorted(by_image, key=str)]
