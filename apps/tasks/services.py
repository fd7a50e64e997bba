"""Writes for tasks: create (with a multi_label task's negative label), update, deploy, delete, and
the rules of attaching labels to a task and detaching them."""

from __future__ import annotations

import logging

from django.db import transaction

from apps.core.errors import ConflictError, NotFoundError
from apps.images.errors import MSG_LABEL_NOT_FOUND
from apps.labels import services as label_services
from apps.labels.models import Label

from .models import Task, VersionStatus

logger = logging.getLogger(__name__)

# Name of the label a multi_label task gets at creation ("none of the tags applies").
NEGATIVE_LABEL_NAME = "{task_name} - negative"
NEGATIVE_LABEL_DESCRIPTION = "Images on which none of the task's tags applies."

# The label type each task type accepts.
LABEL_TYPE_FOR_TASK_TYPE: dict[str, str] = {
    Task.Type.MULTI_CLASS: Label.Type.CATEGORY,
    Task.Type.MULTI_LABEL: Label.Type.TAG,
    Task.Type.REGRESSION: Label.Type.VALUE,
}

MSG_LABEL_TYPE_MISMATCH = "A {task_type} task accepts only {expected} labels; this label is a {label_type}."
MSG_NEGATIVE_LABEL_DETACH = "The negative label of a multi_label task cannot be removed from it."
MSG_TASK_TYPE_LOCKED = "The type of a task with labels or trained versions cannot be changed."
MSG_TASK_TRAINING = "A version of this task is training; delete the task when the training has finished."
MSG_VERSION_NOT_TRAINED = "Model version {version} of this task is not trained."

_EDITABLE_FIELDS = (
    "name",
    "type",
    "description",
    "keep_deployed_version",
    "architecture",
    "input_size",
    "train_time_budget",
    "final_refit",
)


def _add_negative_label(task: Task) -> Label:
    label = label_services.label_create(
        workspace=task.workspace,
        name=NEGATIVE_LABEL_NAME.format(task_name=task.name),
        type=Label.Type.TAG,
        description=NEGATIVE_LABEL_DESCRIPTION,
        negative_for_task=task,
    )
    label_attach(label=label, task=task)
    return label


def label_attach(*, label: Label, task: Task) -> Task:
    """Attach a label of the same workspace and the matching type to a task (idempotent)."""
    if label.workspace_id != task.workspace_id:
        raise NotFoundError(MSG_LABEL_NOT_FOUND)
    expected = LABEL_TYPE_FOR_TASK_TYPE[task.type]
    if label.type != expected:
        raise ConflictError(
            MSG_LABEL_TYPE_MISMATCH.format(task_type=task.type, expected=expected, label_type=label.type)
        )
    task.labels.add(label)
    return task


@transaction.atomic
def task_label_create(*, task: Task, name: str) -> Label:
    """A new label of the type the task takes (category, tag or value), attached to it: both or neither."""
    label = label_services.label_create(
        workspace=task.workspace, name=name, type=LABEL_TYPE_FOR_TASK_TYPE[task.type]
    )
    label_attach(label=label, task=task)
    return label


def label_detach(*, label: Label, task: Task) -> Task:
    """Detach a label from a task (idempotent); the label and its images stay."""
    if label.workspace_id != task.workspace_id:
        raise NotFoundError(MSG_LABEL_NOT_FOUND)
    if label.negative_for_task_id == task.pk:
        raise ConflictError(MSG_NEGATIVE_LABEL_DETACH)
    task.labels.remove(label)
    return task


@transaction.atomic
def task_create(
    *,
    workspace,
    owner,
    name: str,
    type: str = Task.Type.MULTI_CLASS,
    description: str = "",
    keep_deployed_version: bool = False,
    architecture: str = "",
    input_size: int | None = None,
    train_time_budget: int | None = None,
    final_refit: bool = False,
) -> Task:
    """Create a task in the workspace, owned by ``owner`` (who gets the training e-mails).

    A multi_label task gets its negative label, attached, in the same transaction.
    """
    task = Task.objects.create(
        workspace=workspace,
        owner=owner,
        name=name,
        type=type,
        description=description or "",
        keep_deployed_version=keep_deployed_version,
        architecture=architecture or "",
        input_size=input_size,
        train_time_budget=train_time_budget,
        final_refit=bool(final_refit),
    )
    if task.type == Task.Type.MULTI_LABEL:
        _add_negative_label(task)
    logger.info("Created %s task %s in workspace %s", task.type, task.pk, workspace.pk)
    return task


@transaction.atomic
def task_update(*, task: Task, data: dict) -> Task:
    """Change a task's editable fields; ``production_version`` in ``data`` deploys that version.

    ``data`` holds only the fields to change. The type is locked once the task has labels or
    versions (the labels would no longer match it); a label-less task turned multi_label gets its
    negative label.
    """
    data = dict(data)
    production_version = data.pop("production_version", None)
    new_type = data.get("type")
    if new_type is not None and new_type != task.type:
        if task.labels.exists() or task.versions.exists():
            raise ConflictError(MSG_TASK_TYPE_LOCKED)
    changed = []
    for field in _EDITABLE_FIELDS:
        if field in data:
            value = data[field]
            if field in ("description", "architecture") and value is None:
                value = ""
            setattr(task, field, value)
            changed.append(field)
    if changed:
        task.save(update_fields=changed)
    if "type" in changed and task.type == Task.Type.MULTI_LABEL and not task.negative_labels.exists():
        _add_negative_label(task)
    if production_version is not None:
        task = task_deploy(task=task, version=production_version)
    return task


def task_deploy(*, task: Task, version: int) -> Task:
    """Make TRAINED version number ``version`` the task's production version, the one classify uses
    (ConflictError, a 409, when it is not TRAINED).

    The versions are read through the task's ``versions`` relation: apps/training stands on this
    app, so this app imports none of it. The task row is locked first, the order every writer of a
    task and its versions keeps (apps/training/services.py)."""
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task.pk)
        if not task.versions.filter(version=version, train_status=VersionStatus.TRAINED).exists():
            raise ConflictError(MSG_VERSION_NOT_TRAINED.format(version=version))
        task.production_version = version
        task.save(update_fields=["production_version"])
    return task


@transaction.atomic
def task_delete(*, task: Task) -> None:
    """Delete a task, its model versions and their stored weights; labels and images stay.

    A negative label stays too (as a plain tag: its ``negative_for_task`` becomes null).
    """
    task_id = task.pk
    with transaction.atomic():
        # Lock order everywhere: the task, then its versions. A worker finishing a training locks
        # the same rows in the same order, so it either finishes first (and its files go with the
        # cascade) or sees the version gone.
        task = Task.objects.select_for_update().get(pk=task_id)
        if task.versions.select_for_update().filter(train_status=VersionStatus.IN_TRAINING).exists():
            raise ConflictError(MSG_TASK_TRAINING)
        # The versions go in the cascade; their files follow after the commit (apps/training/signals.py).
        deleted, _ = task.delete()
    logger.info("Deleted task %s (%d rows with it)", task_id, deleted)
