"""Tiny learnable datasets the training tests draw themselves, created through the services."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from apps.images.services import training_image_ingest
from apps.labels.models import Label
from apps.labels.services import label_create
from apps.tasks.models import Task
from apps.tasks.services import label_attach, task_create

SIZE = 32
COLOURS = [(210, 40, 40), (40, 60, 210), (40, 190, 60), (220, 200, 40)]

# Fast settings for a test training: a tiny net from scratch, a few epochs, a short budget.
FAST_TRAINING = {
    "VF_MIN_IMAGES_PER_LABEL": 5,
    "VF_TRAIN_ARCHITECTURE": "resnet10t",
    "VF_TRAIN_PRETRAINED": "none",
    "VF_TRAIN_EPOCHS": 4,
    "VF_TRAIN_TIME_BUDGET": 30,
    # One thread: on a busy 2-core CI machine two spinning OpenMP threads train ~4x slower.
    "VF_TRAIN_THREADS": 1,
}


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def solid(colour, rng: np.random.Generator) -> bytes:
    """A noisy solid colour: unique bytes every call, trivially separable by colour."""
    return _png(np.asarray(colour, dtype=float)[None, None, :] + rng.normal(0, 20, (SIZE, SIZE, 3)))


def halves(left: bool, right: bool, rng: np.random.Generator) -> bytes:
    """Grey picture with a red left half (tag 0) and/or a blue right half (tag 1)."""
    pixels = np.full((SIZE, SIZE, 3), 128.0) + rng.normal(0, 15, (SIZE, SIZE, 3))
    if left:
        pixels[:, : SIZE // 2] = (220, 30, 30) + rng.normal(0, 15, (SIZE, SIZE // 2, 3))
    if right:
        pixels[:, SIZE // 2 :] = (30, 30, 220) + rng.normal(0, 15, (SIZE, SIZE // 2, 3))
    return _png(pixels)


def grey(value: float, rng: np.random.Generator) -> bytes:
    """Brightness ``value`` in [0, 1]: the regression target."""
    return _png(np.full((SIZE, SIZE, 3), 30 + 200 * value) + rng.normal(0, 6, (SIZE, SIZE, 3)))


def make_task(
    workspace, owner, task_type: str = Task.Type.MULTI_CLASS, *, labels: int = 2, per_label: int = 10, seed=0
):
    """A task of ``task_type`` with ``labels`` labels and ``per_label`` drawn images on each.

    multi_class: one colour per label. multi_label: two tags (left red half, right blue half),
    images with one, both, or (negative label) none. regression: one value label, brightness.
    """
    rng = np.random.default_rng(seed)
    task = task_create(workspace=workspace, owner=owner, name=f"{task_type} task", type=task_type)
    if task_type == Task.Type.REGRESSION:
        label = label_create(workspace=workspace, name="brightness", type=Label.Type.VALUE)
        label_attach(label=label, task=task)
        for value in np.linspace(0, 1, per_label):
            training_image_ingest(workspace=workspace, data=grey(value, rng), values={label.id: float(value)})
        return task, [label]
    if task_type == Task.Type.MULTI_LABEL:
        tags = [label_create(workspace=workspace, name=n, type=Label.Type.TAG) for n in ("red", "blue")]
        for tag in tags:
            label_attach(label=tag, task=task)
        negative = task.negative_labels.get()
        for i in range(per_label):
            training_image_ingest(workspace=workspace, data=halves(True, False, rng), label_ids=[tags[0].id])
            training_image_ingest(workspace=workspace, data=halves(False, True, rng), label_ids=[tags[1].id])
            if i % 2 == 0:
                training_image_ingest(
                    workspace=workspace, data=halves(True, True, rng), label_ids=[t.id for t in tags]
                )
                training_image_ingest(
                    workspace=workspace, data=halves(False, False, rng), label_ids=[negative.id]
                )
        return task, tags
    made = []
    for n in range(labels):
        label = label_create(workspace=workspace, name=f"colour{n}", type=Label.Type.CATEGORY)
        label_attach(label=label, task=task)
        for _ in range(per_label):
            training_image_ingest(
                workspace=workspace, data=solid(COLOURS[n % len(COLOURS)], rng), label_ids=[label.id]
            )
        made.append(label)
    return task, made
