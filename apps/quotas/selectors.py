"""Reads of apps/quotas: a workspace's limits (its row, else the settings defaults) and the bytes
its images take."""

from __future__ import annotations

from django.conf import settings

from .models import StoredBytes, WorkspaceQuota

# Each quota and the setting that holds its default (None: unlimited).
QUOTA_DEFAULTS = {
    "images": "VF_QUOTA_IMAGES",
    "stored_bytes": "VF_QUOTA_BYTES",
    "versions": "VF_QUOTA_VERSIONS",
    "queued_trainings": "VF_QUOTA_QUEUED_TRAININGS",
}
QUOTAS = tuple(QUOTA_DEFAULTS)


def quota_limits(*, workspace_id) -> dict[str, int | None]:
    """Every quota of the workspace: its row's value where set, else the setting; None = no limit.
    One query."""
    row = WorkspaceQuota.objects.filter(workspace_id=workspace_id).values(*QUOTAS).first() or {}
    return {
        name: row[name] if row.get(name) is not None else getattr(settings, setting, None)
        for name, setting in QUOTA_DEFAULTS.items()
    }


def stored_bytes_used(*, workspace_id) -> int:
    """Bytes the workspace's training images (and thumbnails) take, from the kept counter."""
    return StoredBytes.objects.filter(workspace_id=workspace_id).values_list("bytes", flat=True).first() or 0
