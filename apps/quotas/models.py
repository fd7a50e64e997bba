from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models


class WorkspaceQuota(models.Model):
    """A workspace's limits, set by the admin. An empty (null) limit is the settings default
    (``VF_QUOTA_*``, unlimited when unset); a workspace without a row has the defaults only."""

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, primary_key=True, related_name="quota"
    )
    images = models.BigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0)], help_text="Training images stored."
    )
    stored_bytes = models.BigIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Bytes of stored images and their thumbnails.",
    )
    versions = models.IntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Model versions kept (any status).",
    )
    queued_trainings = models.IntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Trainings queued or running at once.",
    )
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"quotas of {self.workspace_id}"


class StoredBytes(models.Model):
    """Bytes a workspace's training images take in storage, so a quota check never sums a million
    rows. Kept by triggers on the images table (migration 0001, apps/core/counters.py): every
    insert adds the image's ``stored_bytes``, every delete subtracts it, whichever path it takes.
    A workspace without a row stores nothing."""

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, primary_key=True, related_name="stored_bytes"
    )
    bytes = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.bytes} bytes in {self.workspace_id}"
