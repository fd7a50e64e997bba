"""Reads of similarity: a task's descriptor runs, a version's descriptors as arrays."""

from __future__ import annotations

import numpy as np
from django.db.models import Count, Max

from apps.tasks.models import Task

from .models import Descriptor, DescriptorRun

ACTIVE = (DescriptorRun.Status.QUEUED, DescriptorRun.Status.RUNNING)


def descriptor_run_latest(*, task: Task) -> DescriptorRun | None:
    """The task's most recent descriptor run, whatever its status."""
    return DescriptorRun.objects.filter(task=task).order_by("-created").first()


def descriptor_run_active(*, task: Task) -> DescriptorRun | None:
    """A run of the task that is queued or computing now."""
    return DescriptorRun.objects.filter(task=task, status__in=ACTIVE).order_by("-created").first()


def descriptor_run_done(*, task: Task) -> DescriptorRun | None:
    """The task's latest finished run: its version's descriptors answer the task's searches."""
    return (
        DescriptorRun.objects.filter(task=task, status=DescriptorRun.Status.DONE)
        .select_related("version")
        .order_by("-finished")
        .first()
    )


def descriptor_run_for_workspace(*, workspace_id) -> DescriptorRun | None:
    """The workspace's most recently finished run of any task: the index an upload is checked
    against for near-duplicates (None when the workspace has none)."""
    return (
        DescriptorRun.objects.filter(workspace_id=workspace_id, status=DescriptorRun.Status.DONE)
        .select_related("version__task")
        .order_by("-finished")
        .first()
    )


def descriptor_generation(*, version_id) -> tuple[int, int]:
    """``(largest row id, row count)`` of a version's descriptors: a per-process index built from
    the rows is current while both are unchanged."""
    found = Descriptor.objects.filter(version_id=version_id).aggregate(top=Max("id"), count=Count("id"))
    return int(found["top"] or 0), int(found["count"])


def descriptor_rows(*, version_id, after_id: int = 0) -> tuple[np.ndarray, list, np.ndarray]:
    """A version's descriptors with row id over ``after_id``: ``(row ids, image ids, vectors)``,
    vectors as float32 ``(n, dim)``."""
    rows = list(
        Descriptor.objects.filter(version_id=version_id, id__gt=after_id)
        .order_by("id")
        .values_list("id", "image_id", "vector")
    )
    if not rows:
        return np.zeros(0, dtype=np.int64), [], np.zeros((0, 0), dtype=np.float32)
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(bytes(row[2]) for row in rows), dtype=np.float16)
    return ids, [row[1] for row in rows], vectors.reshape(len(rows), -1).astype(np.float32)


def descriptors_of(*, version_id, image_ids) -> dict:
    """The stored descriptors of ``image_ids`` under a version: ``{image id: float32 vector}``."""
    rows = Descriptor.objects.filter(version_id=version_id, image_id__in=list(image_ids))
    return {
        row.image_id: np.frombuffer(bytes(row.vector), dtype=np.float16).astype(np.float32)
        for row in rows.only("image_id", "vector")
    }


def descriptor_count(*, version_id) -> int:
    return Descriptor.objects.filter(version_id=version_id).count()


def similarity_status(*, task: Task) -> dict:
    """Whether the task's searches can be answered, by which version, and its latest run."""
    done = descriptor_run_done(task=task)
    latest = DescriptorRun.objects.filter(task=task).select_related("version").order_by("-created").first()
    return {
        "task_id": task.pk,
        "ready": done is not None,
        "version": done.version.version if done else None,
        "descriptors": descriptor_count(version_id=done.version_id) if done else 0,
        "run": latest,
    }


def descriptor_ids(*, version_id, up_to: int) -> tuple[np.ndarray, list]:
    """A version's row ids up to ``up_to`` and their image ids, in row order (no vectors)."""
    rows = list(
        Descriptor.objects.filter(version_id=version_id, id__lte=up_to)
        .order_by("id")
        .values_list("id", "image_id")
    )
    return np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)), [row[1] for row in rows]
