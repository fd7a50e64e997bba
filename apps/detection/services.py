"""Writes for detection: tasks (on the shared Task model), labels, objects, negative images.

Boxes are validated here, against the stored image they are drawn on: four finite numbers,
``0 <= xmin < xmax <= img_width`` and ``0 <= ymin < ymax <= img_height``.
"""

from __future__ import annotations

import logging
import math
import zipfile
from collections.abc import Callable
from pathlib import PurePosixPath

from django.conf import settings
from django.db import transaction

from apps.core.errors import DomainError, NotFoundError
from apps.images.decoding import max_image_bytes
from apps.images.models import TrainingImage
from apps.images.services import training_image_ingest, zip_limit
from apps.labels.models import Label
from apps.tasks import services as task_services
from apps.tasks.models import Task

from .formats import AnnotatedImage, parse_coco, parse_voc
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
    """A detection task: a Task of type ``detection`` (one training lifecycle for every kind).

    Without a ``train_time_budget`` it gets ``VF_DETECTION_TIME_BUDGET``: a detector needs minutes
    where a classifier's probe needs seconds (the task shows it and may change it)."""
    return task_services.task_create(
        workspace=workspace,
        owner=owner,
        name=name,
        type=Task.Type.DETECTION,
        description=description or "",
        train_time_budget=train_time_budget or settings.VF_DETECTION_TIME_BUDGET,
    )


def _same_workspace(task: Task, label: DetectionLabel) -> None:
    if label.workspace_id != task.workspace_id:
        raise NotFoundError(MSG_LABEL_NOT_FOUND)


def detection_label_attach(*, task: Task, label: DetectionLabel) -> Task:
    """Attach a detection label of the task's workspace to the task (idempotent)."""
    _same_workspace(task, label)
    label.tasks.add(task)
    return task


@transaction.atomic
def detection_task_label_create(*, task: Task, name: str) -> DetectionLabel:
    """A new detection label attached to the detection task: both or neither."""
    label = detection_label_create(workspace=task.workspace, name=name)
    detection_label_attach(task=task, label=label)
    return label


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


# --------------------------------------------------------------------------- import (COCO, VOC)

MSG_IMAGE_FILE_MISSING = "No image file of this name next to the annotations."
MSG_NO_ANNOTATIONS = "No COCO .json or Pascal VOC .xml annotation file found."
MSG_BAD_ZIP = "The file is not a zip archive we can read."
MSG_ZIP_TOO_LARGE = "The zip archive is over {limit} bytes (unpacked)."
# Annotators' boxes often end half a pixel or a pixel past the edge: that much is clipped, more
# is refused with the reason.
EDGE_SLACK_PX = 2.0


def _fit_box(box: list[float], image: TrainingImage, declared: tuple[int | None, int | None]) -> list[float]:
    """``box`` in the stored image's pixels: scaled when the annotation declared another size,
    clipped by at most ``EDGE_SLACK_PX`` at the edges, then validated like any object."""
    width, height = declared
    if width and height and (width, height) != (image.img_width, image.img_height):
        sx, sy = image.img_width / width, image.img_height / height
        box = [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]
    w, h = image.img_width, image.img_height
    if -EDGE_SLACK_PX <= min(box[0], box[1]) and box[2] <= w + EDGE_SLACK_PX and box[3] <= h + EDGE_SLACK_PX:
        box = [max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3])]
    box = [round(v, 2) for v in box]
    return box_validate(data=box, width=w, height=h)


def detection_import(
    *,
    workspace,
    images: list[AnnotatedImage],
    read: Callable[[str], bytes | None],
    task: Task | None = None,
    skipped: list[dict] | None = None,
    progress: Callable[[AnnotatedImage], None] | None = None,
) -> dict:
    """Store annotated images as training images with their objects, and report what was skipped.

    ``read(file_name)`` gives an image's bytes (None when there is no such file). Images are stored
    as they are (``noresize``), so the boxes keep their pixels; labels are found by name in the
    workspace or created (and attached to ``task``). An image with no boxes becomes a negative
    image of ``task``. Each image is its own transaction: a bad one is skipped, never half stored.
    Returns ``{"images", "objects", "negative_images", "labels_created", "skipped": [{"file",
    "reason", ("label", "box")}]}``.
    """
    labels = {}
    for label in DetectionLabel.objects.filter(workspace=workspace).order_by("created", "id"):
        labels.setdefault(label.name, label)
    report = {
        "images": 0,
        "objects": 0,
        "negative_images": 0,
        "labels_created": [],
        "skipped": list(skipped or []),
    }

    def label_named(name: str) -> DetectionLabel:
        if name not in labels:
            labels[name] = detection_label_create(workspace=workspace, name=name)
            report["labels_created"].append(name)
        if task is not None:
            labels[name].tasks.add(task)
        return labels[name]

    for item in images:
        if progress:
            progress(item)
        data = read(item.file_name)
        if data is None:
            report["skipped"].append({"file": item.file_name, "reason": MSG_IMAGE_FILE_MISSING})
            continue
        try:
            with transaction.atomic():
                image = training_image_ingest(workspace=workspace, data=data, noresize=True)
                kept = 0
                for name, box in item.boxes:
                    try:
                        fitted = _fit_box(box, image, (item.width, item.height))
                    except DomainError as exc:
                        report["skipped"].append(
                            {"file": item.file_name, "label": name, "box": box, "reason": exc.message}
                        )
                        continue
                    DetectionObject.objects.create(
                        workspace=workspace, detection_label=label_named(name), image=image, data=fitted
                    )
                    kept += 1
                if not kept and task is not None:
                    NegativeImage.objects.create(task=task, image=image)
                    report["negative_images"] += 1
        except DomainError as exc:  # unreadable, too large, already in the workspace
            report["skipped"].append({"file": item.file_name, "reason": exc.message})
            continue
        report["images"] += 1
        report["objects"] += kept
    logger.info(
        "imported %d images, %d objects into workspace %s (%d skipped)",
        report["images"],
        report["objects"],
        workspace.pk,
        len(report["skipped"]),
    )
    return report


def parse_annotations(files: dict[str, bytes]) -> tuple[list[AnnotatedImage], list[dict]]:
    """Every COCO ``.json`` and VOC ``.xml`` among ``files`` (name -> bytes), read."""
    images, skipped = [], []
    for name, content in sorted(files.items()):
        suffix = PurePosixPath(name).suffix.lower()
        if suffix == ".json":
            parsed = parse_coco(content, source=name)
        elif suffix == ".xml":
            parsed = parse_voc(content, source=name)
        else:
            continue
        images += parsed.images
        skipped += parsed.skipped
    return images, skipped


def image_reader(names: dict[str, Callable[[], bytes]]) -> Callable[[str], bytes | None]:
    """``read(file_name)`` over files known by path: the exact relative path first, else the one
    file of that base name (COCO and VOC name images relative to folders that vary)."""
    by_base: dict[str, list[str]] = {}
    for name in names:
        by_base.setdefault(PurePosixPath(name).name, []).append(name)

    def read(file_name: str) -> bytes | None:
        key = file_name.replace("\\", "/").lstrip("./")
        if key in names:
            return names[key]()
        matches = by_base.get(PurePosixPath(key).name, [])
        return names[matches[0]]() if len(matches) == 1 else None

    return read


def detection_import_zip(*, workspace, file, task: Task | None = None) -> dict:
    """``detection_import`` of a zip holding images and COCO ``.json`` / VOC ``.xml`` annotations.

    The archive is bounded like the training-image zip import: its size and unpacked total, and
    each member read with a limit, not trusting the sizes its header declares.
    """
    limit = zip_limit()
    if (file.size or 0) > limit:
        raise DomainError(MSG_ZIP_TOO_LARGE.format(limit=limit))
    try:
        archive = zipfile.ZipFile(file)
        members = [
            info
            for info in archive.infolist()
            if not info.is_dir()
            and not any(p.startswith((".", "__MACOSX")) for p in info.filename.split("/"))
        ]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DomainError(MSG_BAD_ZIP) from exc
    if sum(info.file_size for info in members) > limit:
        raise DomainError(MSG_ZIP_TOO_LARGE.format(limit=limit))

    def reader(info):
        def read() -> bytes:
            with archive.open(info) as member:
                return member.read(max_image_bytes() + 1)

        return read

    annotations, files = {}, {}
    for info in members:
        if PurePosixPath(info.filename).suffix.lower() in (".json", ".xml"):
            annotations[info.filename] = reader(info)()
        else:
            files[info.filename] = reader(info)
    images, skipped = parse_annotations(annotations)
    if not annotations:
        raise DomainError(MSG_NO_ANNOTATIONS)
    return detection_import(
        workspace=workspace, images=images, read=image_reader(files), task=task, skipped=skipped
    )
