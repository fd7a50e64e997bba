from __future__ import annotations

import uuid

from django.db import models


class Label(models.Model):
    """A category, tag or value; workspace-level, attachable to several tasks."""

    class Type(models.TextChoices):
        CATEGORY = "category"
        TAG = "tag"
        VALUE = "value"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=255)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.CATEGORY)
    description = models.TextField(blank=True, default="")
    output_name = models.CharField(max_length=255, blank=True, default="")
    # Set on the label a multi_label task gets automatically ("no tag applies").
    negative_for_task = models.ForeignKey(
        "tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="negative_labels"
    )
    # How many training images carry the label: kept by database triggers on the image-label table
    # (migration 0003), so a label list never counts its images per request.
    images_count = models.BigIntegerField(default=0, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created"]
        indexes = [models.Index(fields=["workspace", "name"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"
