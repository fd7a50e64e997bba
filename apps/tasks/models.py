from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class VersionStatus(models.TextChoices):
    """Where a model version of a task stands (``ModelVersion.train_status``, apps/training).

    Named here, below the training app, because the task's own rules test it (a task is not
    deleted while a version trains; only a TRAINED version is deployed) and training stands on
    this app, not the reverse."""

    QUEUED = "QUEUED"
    IN_TRAINING = "IN_TRAINING"
    TRAINED = "TRAINED"
    FAILED = "FAILED"


class Task(models.Model):
    """A recognition task: its labels, its trained versions and which version is deployed."""

    class Type(models.TextChoices):
        MULTI_CLASS = "multi_class"
        MULTI_LABEL = "multi_label"
        REGRESSION = "regression"
        # Object detection (apps/detection): boxes instead of image labels; not a recognition task.
        DETECTION = "detection"

    class TrainStatus(models.TextChoices):
        NOT_TRAINED = "NOT_TRAINED"
        IN_TRAINING = "IN_TRAINING"
        TRAINED = "TRAINED"
        FAILED = "FAILED"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="tasks")
    # Who created the task: the training e-mails go to this address.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    name = models.CharField(max_length=255)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.MULTI_CLASS)
    description = models.TextField(blank=True, default="")
    labels = models.ManyToManyField("labels.Label", related_name="tasks", blank=True)
    production_version = models.IntegerField(default=-1)
    last_train_status = models.CharField(
        max_length=16, choices=TrainStatus.choices, default=TrainStatus.NOT_TRAINED
    )
    # When True a newly TRAINED version is not deployed automatically.
    keep_deployed_version = models.BooleanField(default=False)
    # Optional per-task model choice (timm name from ml's allowed list) and input size; blank = defaults.
    architecture = models.CharField(max_length=64, blank=True, default="")
    input_size = models.PositiveIntegerField(null=True, blank=True)
    # Seconds a training of this task may take, from the worker picking it up to TRAINED; null =
    # VF_TRAIN_TIME_BUDGET. More time lets the automatic recipe try more candidates, longer.
    train_time_budget = models.PositiveIntegerField(null=True, blank=True)
    # After a version is scored on its 20 % test side, fit the chosen recipe once more on every
    # labelled image before it is saved (its metrics stay those of the 80/20 run).
    final_refit = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"


# The types the recognition API (``task/``, classify) creates and lists; detection tasks live under
# ``detection/v2/task/`` (apps/detection).
RECOGNITION_TYPES = (Task.Type.MULTI_CLASS, Task.Type.MULTI_LABEL, Task.Type.REGRESSION)
