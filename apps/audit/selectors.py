"""Reading the audit log: a workspace's events for its owner, newest first."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.errors import PermissionDeniedError
from apps.workspaces.models import Workspace

from .models import AuditEvent

MSG_ONLY_OWNER_READS = "Only the workspace's owner reads its audit log."


def audit_event_list(*, workspace: Workspace, user) -> QuerySet[AuditEvent]:
    """The workspace's events, newest first; only its owner may read them."""
    if workspace.owner_id != user.pk:
        raise PermissionDeniedError(MSG_ONLY_OWNER_READS)
    return AuditEvent.objects.filter(workspace=workspace).order_by("-created", "-id")
