"""Recording audit events. One function; the receivers in signals.py call it."""

from __future__ import annotations

from .context import current_actor, current_token
from .models import AuditEvent


def audit_record(
    *,
    action: str,
    target_type: str,
    target_id="",
    target_name: str = "",
    workspace=None,
    workspace_id=None,
    workspace_name: str = "",
    actor=None,
    details: dict | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Write one event. The actor defaults to the user of the request being served (none for a
    command, a job or the sweep); a call made with a scoped API token acts as the workspace's
    owner, and the event's details name the token. In the caller's transaction: a rolled-back
    change logs nothing."""
    request_actor, request_ip = current_actor()
    details = {**(details or {}), **current_token()}
    actor = actor if actor is not None else request_actor
    if workspace is not None:
        workspace_id, workspace_name = workspace.pk, workspace_name or workspace.name
    return AuditEvent.objects.create(
        action=action,
        target_type=target_type,
        target_id=str(target_id or ""),
        target_name=str(target_name or "")[:255],
        workspace_id=workspace_id,
        workspace_name=(workspace_name or "")[:255],
        actor=actor,
        actor_name=getattr(actor, "username", "") or "",
        details=details or {},
        ip=ip or request_ip,
    )
