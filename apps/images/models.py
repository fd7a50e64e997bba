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
    # True once `manage.py check_storage --fix` found the file (or its thumbnail) gone; else null.
    # Nullable without a default so that SQLite adds the column in place: a column with a default
    # makes Django rebuild the table, which drops the image counters' triggers (migration 0004).
    file_missing = models.BooleanField(null=True, blank=True, default=None)
    # Bytes in storage (the stored image and its thumbnail), for the workspace's stored-bytes quota:
    # summed per workspace by triggers into apps/quotas' StoredBytes. Null (no default, so SQLite
    # adds the column in place, as above) for images stored before the column existed.
    stored_bytes = models.BigIntegerField(null=True, blank=True, default=None)
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


class ImageMinute(models.Model):
    """How many of a workspace's images were created in each minute (UTC), on PostgreSQL.

    A deep page of the list (``?page=N``) starts at the minute that holds its first row, found by
    a running sum over these rows inside the hour ``ImageHour`` points to, instead of skipping half
    a million index entries (apps/core/pagination.py). Kept by statement-level triggers on the
    images table (migration 0005), like ``ImageCount``; ``created`` never changes on an existing
    image. SQLite keeps no such rows: its lists skip rows as before.
    """

    # The unique constraint's index (workspace, minute) serves every read: no index of its own.
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    minute = models.DateTimeField()
    images = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "minute"], name="unique_image_minute_per_workspace")
        ]

    def __str__(self) -> str:
        return f"{self.images} image(s) in {self.workspace_id} at {self.minute:%Y-%m-%d %H:%M}"


class ImageHour(models.Model):
    """How many of a workspace's images were created in each hour (UTC), on PostgreSQL: the first
    level of a deep page's seek (the hour, by a running sum over at most a few thousand rows), whose
    minutes (``ImageMinute``) then give the minute. Kept by statement-level triggers like the
    minutes (migration 0006); SQLite keeps no such rows.
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    hour = models.DateTimeField()
    images = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "hour"], name="unique_image_hour_per_workspace")
        ]

    def __str__(self) -> str:
        return f"{self.images} image(s) in {self.workspace_id} at {self.hour:%Y-%m-%d %H}h"
