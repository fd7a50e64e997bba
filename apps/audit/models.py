from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One thing someone did that a workspace's owner (or the admin) may need to account for.

    The actor's and the target's names are copied: the log outlives what it names (a deleted
    user, task or workspace). Events of a deleted workspace stay for the admin (``workspace``
    becomes null; ``workspace_name`` keeps the name).
    """

    class Action(models.TextChoices):
        MEMBER_ADDED = "membership.added", "Member added"
        MEMBER_REMOVED = "membership.removed", "Member removed"
        TOKEN_CREATED = "token.created", "Token created"
        TOKEN_REVOKED = "token.revoked", "Token revoked"
        WORKSPACE_DELETED = "workspace.deleted", "Workspace deleted"
        TASK_DELETED = "task.deleted", "Task deleted"
        LABEL_DELETED = "label.deleted", "Label deleted"
        VERSION_DELETED = "version.deleted", "Model version deleted"
        SIGNIN_LOCKED_OUT = "signin.locked_out", "Sign-in locked out"
        WEBHOOK_CREATED = "webhook.created", "Webhook created"
        WEBHOOK_DELETED = "webhook.deleted", "Webhook deleted"
        QUOTA_CHANGED = "quota.changed", "Quota changed"

    id = models.BigAutoField(primary_key=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    workspace_name = models.CharField(max_length=255, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True, default="")
    action = models.CharField(max_length=32, choices=Action.choices)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64, blank=True, default="")
    target_name = models.CharField(max_length=255, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["workspace", "-created", "-id"], name="audit_workspace_created")]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M} {self.actor_name or '-'} {self.action} {self.target_name}"
