"""Writes for labels: create, update, delete, wipe. Attaching labels to tasks is apps/tasks/services.py."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from apps.core.broker import broker_reachable, job_enqueue
from apps.core.errors import ConflictError, ServiceUnavailableError

from .job_names import WIPE_JOB
from .models import Label

if TYPE_CHECKING:
    from apps.tasks.models import Task

logger = logging.getLogger(__name__)

MSG_LABEL_TYPE_LOCKED = "The type of a label attached to a task cannot be changed; detach it first."
MSG_QUEUE_DOWN = (
    "The job queue is unreachable, so the wipe cannot start; nothing was deleted. Try again later."
)
MSG_NEGATIVE_LABEL_DELETE = "This is the negative label of a multi_label task; delete the task first."

_EDITABLE_FIELDS = ("name", "type", "description", "output_name")


def label_create(
    *,
    workspace,
    name: str,
    type: str = Label.Type.CATEGORY,
    description: str = "",
    output_name: str = "",
    negative_for_task: Task | None = None,
) -> Label:
    """Create a workspace-level label (attached to no task yet)."""
    return Label.objects.create(
        workspace=workspace,
        name=name,
        type=type,
        description=description or "",
        output_name=output_name or "",
        negative_for_task=negative_for_task,
    )


def label_update(*, label: Label, data: dict) -> Label:
    """Change a label's name, type, description or output name.

    The type is locked while the label is attached to a task: the task would then hold a label of
    the wrong type.
    """
    new_type = data.get("type")
    if new_type is not None and new_type != label.type and label.tasks.exists():
        raise ConflictError(MSG_LABEL_TYPE_LOCKED)
    changed = []
    for field in _EDITABLE_FIELDS:
        if field in data:
            value = data[field]
            setattr(label, field, "" if value is None else value)
            changed.append(field)
    if changed:
        label.save(update_fields=changed)
    return label


def _refuse_negative_label(label: Label) -> None:
    if label.negative_for_task_id is not None:
        raise ConflictError(MSG_NEGATIVE_LABEL_DELETE)


def label_delete(*, label: Label) -> None:
    """Delete a label: it leaves every task it was attached to; its images stay, unlabelled by it."""
    _refuse_negative_label(label)
    label.delete()


WIPE_BATCH = 500  # images deleted per committed transaction


def _wiped_images(label: Label):
    from apps.images.models import TrainingImage  # the images app sits below; see label_wipe

    return TrainingImage.objects.filter(workspace_id=label.workspace_id, image_labels__label=label)


def label_wipe(*, label: Label, batch: int | None = None) -> int:
    """Delete a label and every training image that carries it (rows and files); return the count.

    In committed batches of ``batch`` images, each one's files deleted after its commit: a label
    of a million images never holds one transaction (or its locks) for minutes, and what was
    deleted stays deleted if the work stops half-way (a second wipe finishes it).
    """
    # Imported here: the images app owns image deletion (files included) and imports labels itself.
    from apps.images.models import TrainingImage
    from apps.images.services import training_image_delete_many

    _refuse_negative_label(label)
    batch = batch or WIPE_BATCH
    count = 0
    while True:
        # Ids first: the queryset handed over must not depend on the label rows it is about to delete.
        ids = list(_wiped_images(label).order_by().values_list("pk", flat=True)[:batch])
        if not ids:
            break
        count += training_image_delete_many(queryset=TrainingImage.objects.filter(pk__in=ids))
    label.delete()
    logger.info("Wiped label %s with %d image(s)", label.pk, count)
    return count


def label_wipe_start(*, label: Label) -> dict | None:
    """``DELETE label/{id}/wipe``: a label with up to ``VF_WIPE_INLINE_MAX`` images is wiped now
    (None: answered 204); a larger one by a job, in the same batches, and this returns what the
    202 answer says. The label's image count shows the progress until the label is gone."""
    _refuse_negative_label(label)
    images = _wiped_images(label).count()
    if images <= settings.VF_WIPE_INLINE_MAX:
        label_wipe(label=label)
        return None
    if not broker_reachable():
        raise ServiceUnavailableError(MSG_QUEUE_DOWN)
    transaction.on_commit(lambda: job_enqueue(WIPE_JOB, str(label.pk)))
    logger.info("Queued the wipe of label %s with %d image(s)", label.pk, images)
    return {"id": str(label.pk), "images": images, "status": "wiping"}
