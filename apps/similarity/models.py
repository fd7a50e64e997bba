"""Similarity's rows: each image's descriptor under a version, and the runs that compute them.

The descriptors live in the database (float16 bytes, half the size of float32 with no change in
ranking), so every machine builds the same index from the same rows; the index itself is a
per-process cache (apps/similarity/cache.py).
"""

from __future__ import annotations

import uuid

from django.db import models


class DescriptorRun(models.Model):
    """One computation of the descriptors of a workspace's images by a task's version: its
    progress while it runs; once DONE the version's descriptors answer similarity searches."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED"
        RUNNING = "RUNNING"
        DONE = "DONE"
        FAILED = "FAILED"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="descriptor_runs")
    version = models.ForeignKey("training.ModelVersion", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)  # 0 to 100
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["task", "-created"], name="descriptor_run_task_created"),
            models.Index(fields=["workspace", "status", "-finished"], name="descriptor_run_ws_done"),
        ]

    def __str__(self) -> str:
        return f"descriptors of {self.task_id} ({self.status})"


class Descriptor(models.Model):
    """An image's descriptor under a version: L2-normalised penultimate features, float16 bytes."""

    version = models.ForeignKey("training.ModelVersion", on_delete=models.CASCADE, related_name="+")
    image = models.ForeignKey("images.TrainingImage", on_delete=models.CASCADE, related_name="descriptors")
    vector = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "image"], name="unique_descriptor_per_version")
        ]
        # A version's generation (largest row id) and its rows after an id, both by this index.
        indexes = [models.Index(fields=["version", "id"], name="descriptor_version_id")]

    def __str__(self) -> str:
        return f"descriptor of {self.image_id} by {self.version_id}"
