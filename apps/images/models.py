from __future__ import annotations

import uuid

from django.db import models


class TrainingImage(models.Model):
    """An uploaded image of a workspace, with its labels (and regression values)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="images")
    # Storage names (not public paths): the API hands out signed, expiring URLs only.
    file = models.CharField(max_length=512)
    thumbnail = models.CharField(max_length=512, blank=True, default="")
    img_width = models.PositiveIntegerField()
    img_height = models.PositiveIntegerField()
    # SHA-256 of the uploaded bytes: the same image twice in one workspace is refused.
    content_hash = models.CharField(max_length=64)
    meta_data = models.JSONField(default=dict, blank=True)
    test_image = models.BooleanField(default=False)
    real = models.BooleanField(default=False)
    verify_count = models.PositiveIntegerField(default=0)
    labels = models.ManyToManyField("labels.Label", through="ImageLabel", related_name="images", blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "id"]
        # The list endpoint pages a workspace's images newest first, by keyset (apps/core/pagination.py):
        # this index holds the whole ordering (the id breaks ties) and, on PostgreSQL, the flags the
        # list filters on, so a page, an offset and a filtered count read the index, never the table.
        indexes = [
            models.Index(
                fields=["workspace", "-created", "id"],
                name="image_workspace_created_id",
                include=["test_image", "real", "verify_count"],
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "content_hash"], name="unique_image_content_per_workspace"
            )
        ]

    def __str__(self) -> str:
        return str(self.id)


class ImageLabel(models.Model):
    """A label on a training image, with its regression value for a ``value`` label."""

    image = models.ForeignKey(TrainingImage, on_delete=models.CASCADE, related_name="image_labels")
    label = models.ForeignKey("labels.Label", on_delete=models.CASCADE, related_name="image_labels")
    # The regression target for a ``value`` label; null for categories and tags.
    value = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "label"], name="unique_image_label")]

    def __str__(self) -> str:
        return f"{self.label_id} on {self.image_id}"


class ImageCount(models.Model):
    """How many training images a workspace holds, so a list never counts a million rows.

    Kept by database triggers on the images table (migration 0004): every insert and delete adds
    or subtracts, whichever path it takes (services, cascades from a workspace or user delete, the
    admin, bulk SQL). A workspace without a row has no images.
    """

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, primary_key=True, related_name="image_count"
    )
    images = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.images} image(s) in {self.workspace_id}"
