"""The labelling loop's rows: which images were uploaded to a task, and the ranked suggestions of
each scoring run."""

from __future__ import annotations

import uuid

from django.db import models


class PoolImage(models.Model):
    """An image uploaded to a task (the console's drop zone, ``POST task/{id}/pool/``), so it is in
    that task's pool while it carries none of the task's labels, even if it is labelled for another
    task. An image with no label at all is in every task's pool without a row here."""

    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="pool_images")
    image = models.ForeignKey("images.TrainingImage", on_delete=models.CASCADE, related_name="pool_entries")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "task"], name="unique_pool_image_per_task")]

    def __str__(self) -> str:
        return f"{self.image_id} in the pool of {self.task_id}"


class SuggestionRun(models.Model):
    """One scoring of a task's pool by a version: its progress while it runs, then its suggestions."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED"
        RUNNING = "RUNNING"
        DONE = "DONE"
        FAILED = "FAILED"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="suggestion_runs")
    version = models.IntegerField()  # the task's version number that scored the pool
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)  # 0 to 100
    scored = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["task", "-created"], name="suggestion_run_task_created")]

    def __str__(self) -> str:
        return f"suggestions of {self.task_id} v{self.version} ({self.status})"


class Suggestion(models.Model):
    """An image of the pool to label next: its place in the run's order, how unsure the model was,
    and the model's guess (``labels`` with probabilities, or ``objects`` for detection)."""

    run = models.ForeignKey(SuggestionRun, on_delete=models.CASCADE, related_name="suggestions")
    image = models.ForeignKey("images.TrainingImage", on_delete=models.CASCADE, related_name="suggestions")
    rank = models.PositiveIntegerField()
    uncertainty = models.FloatField()
    guess = models.JSONField(default=dict)

    class Meta:
        ordering = ["rank"]
        constraints = [models.UniqueConstraint(fields=["run", "rank"], name="unique_suggestion_rank")]

    def __str__(self) -> str:
        return f"#{self.rank} {self.image_id}"
