from __future__ import annotations

import uuid

from django.db import models

from apps.tasks.models import VersionStatus


class ModelVersion(models.Model):
    """One trained (or training) version of a task's model: the API's ``model`` object."""

    Status = VersionStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="model_versions"
    )
    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    train_status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    progress = models.FloatField(default=0.0)
    epoch = models.PositiveIntegerField(null=True, blank=True)
    loss = models.FloatField(null=True, blank=True)
    # What the training does now, in words ("lite2_probe: features of tf_efficientnet_lite2 (1 of
    # 2)"), for the console's progress; blank when queued or done.
    stage = models.CharField(max_length=255, blank=True, default="")
    accuracy = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    # The 80/20 split used: {"train": [image ids], "test": [image ids], "seed": int}.
    split = models.JSONField(default=dict, blank=True)
    # Test-side predictions per image, for GET model/{id}/evaluation/.
    evaluation = models.JSONField(default=list, blank=True)
    # Storage prefix of the artifacts (model.safetensors, model.json); blank until TRAINED.
    artifact_path = models.CharField(max_length=512, blank=True, default="")
    # Set when a worker picks the job up; the sweep uses it to find versions left by a dead worker.
    heartbeat = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Which worker process holds the claim ("host/pid/start ticks", apps/training/claims.py): a
    # redelivered job takes over at once from a worker process that died on the same machine.
    claimed_by = models.CharField(max_length=255, blank=True, default="")
    # The stored file the version is served from (and downloaded as): blank for model.onnx, the FP32
    # export its training wrote; the INT8 file's digest name once the INT8 attempt kept it
    # (ml/recognition/serving.py). Caches of loaded versions are keyed by it, so every process
    # switches when it changes. metrics["serving"] holds the whole record (agreement, limits).
    served_file = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        # The table kept its name when the model moved here from apps.tasks (migrations
        # tasks.0002 and training.0001 move the model in Django's state only; no data moves).
        db_table = "tasks_modelversion"
        ordering = ["task", "version"]
        constraints = [models.UniqueConstraint(fields=["task", "version"], name="unique_task_version")]

    def __str__(self) -> str:
        return f"{self.task.name} v{self.version} ({self.train_status})"
