"""Reads for workspaces and memberships."""

from __future__ import annotations

from apps.core.ids import parse_uuid

from .models import Membership, Workspace


def workspace_list_for_user(*, user):
    return Workspace.objects.filter(memberships__user=user).select_related("owner").order_by("created")


def workspace_get_for_user(*, user, workspace_id) -> Workspace | None:
    """The workspace if ``user`` is a member of it, else None (callers answer 404, not 403)."""
    workspace_uuid = parse_uuid(workspace_id)
    if workspace_uuid is None:
        return None
    return workspace_list_for_user(user=user).filter(pk=workspace_uuid).first()


def membership_list(*, workspace: Workspace):
    return Membership.objects.filter(workspace=workspace).select_related("user").order_by("created")
