"""What the audit log records, as receivers of the models' own signals.

Signals, because these changes happen on paths no one service sees: the API, the console, the
admin, a user's or workspace's cascade. A delete that is part of a larger one (a workspace's
tasks, a task's versions) is not logged again: Django names the delete's ``origin``, and the
larger one has its own event. Loading rows (``raw``: a restore) logs nothing.
"""

from __future__ import annotations

from axes.signals import user_locked_out
from django.conf import settings
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone
from rest_framework.authtoken.models import Token

from apps.detection.models import DetectionLabel
from apps.labels.models import Label
from apps.quotas.models import WorkspaceQuota
from apps.tasks.models import Task
from apps.tokens.models import ScopedToken
from apps.training.models import ModelVersion
from apps.webhooks.models import Webhook
from apps.workspaces.models import Membership, Workspace

from .models import AuditEvent
from .services import audit_record

Action = AuditEvent.Action


def _part_of_a_larger_delete(instance, origin) -> bool:
    """True when the delete began at another model's row or rows (a cascade)."""
    if origin is None:
        return False
    started_at = origin.model if hasattr(origin, "model") else type(origin)  # a queryset, or a row
    return not issubclass(started_at, type(instance))


@receiver(post_save, sender=Membership, dispatch_uid="audit-membership-added")
def membership_added(sender, instance: Membership, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw and instance.role != Membership.Role.OWNER:
        audit_record(
            action=Action.MEMBER_ADDED,
            target_type="user",
            target_id=instance.user_id,
            target_name=instance.user.username,
            workspace=instance.workspace,
        )


@receiver(post_delete, sender=Membership, dispatch_uid="audit-membership-removed")
def membership_removed(sender, instance: Membership, origin=None, **kwargs) -> None:
    if instance.role == Membership.Role.OWNER or _part_of_a_larger_delete(instance, origin):
        return  # the owner's membership goes only with the workspace, which has its own event
    audit_record(
        action=Action.MEMBER_REMOVED,
        target_type="user",
        target_id=instance.user_id,
        target_name=instance.user.username,
        workspace_id=instance.workspace_id,
        workspace_name=Workspace.objects.filter(pk=instance.workspace_id)
        .values_list("name", flat=True)
        .first()
        or "",
    )


@receiver(post_save, sender=Token, dispatch_uid="audit-token-created")
def token_created(sender, instance: Token, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        audit_record(
            action=Action.TOKEN_CREATED,
            target_type="token",
            target_id=instance.user_id,
            target_name=f"API token of {instance.user.username}",
        )


@receiver(post_delete, sender=Token, dispatch_uid="audit-token-revoked")
def token_revoked(sender, instance: Token, origin=None, **kwargs) -> None:
    if not _part_of_a_larger_delete(instance, origin):  # not with its user
        audit_record(
            action=Action.TOKEN_REVOKED,
            target_type="token",
            target_id=instance.user_id,
            target_name=f"API token of user {instance.user_id}",
        )


def _scoped_token_details(instance: ScopedToken) -> dict:
    return {
        "scope": instance.scope,
        "prefix": instance.prefix,
        "expires": instance.expires.isoformat() if instance.expires else None,
    }


@receiver(post_save, sender=ScopedToken, dispatch_uid="audit-scoped-token-created")
def scoped_token_created(sender, instance: ScopedToken, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        audit_record(
            action=Action.TOKEN_CREATED,
            target_type="scoped_token",
            target_id=instance.pk,
            target_name=instance.name,
            workspace=instance.workspace,
            details=_scoped_token_details(instance),
        )


@receiver(post_delete, sender=ScopedToken, dispatch_uid="audit-scoped-token-revoked")
def scoped_token_revoked(sender, instance: ScopedToken, origin=None, **kwargs) -> None:
    if not _part_of_a_larger_delete(instance, origin):  # not with its workspace
        _deleted(
            Action.TOKEN_REVOKED,
            "scoped_token",
            instance.name,
            instance.workspace_id,
            instance.pk,
            _scoped_token_details(instance),
        )


@receiver(post_delete, sender=Workspace, dispatch_uid="audit-workspace-deleted")
def workspace_deleted(sender, instance: Workspace, origin=None, **kwargs) -> None:
    if not _part_of_a_larger_delete(instance, origin):
        audit_record(
            action=Action.WORKSPACE_DELETED,
            target_type="workspace",
            target_id=instance.pk,
            target_name=instance.name,
            workspace_name=instance.name,
        )


def _deleted(action: str, target_type: str, name: str, workspace_id, target_id, details=None) -> None:
    audit_record(
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_name=name,
        workspace_id=workspace_id if Workspace.objects.filter(pk=workspace_id).exists() else None,
        details=details,
    )


@receiver(post_delete, sender=Task, dispatch_uid="audit-task-deleted")
def task_deleted(sender, instance: Task, origin=None, **kwargs) -> None:
    if not _part_of_a_larger_delete(instance, origin):
        _deleted(
            Action.TASK_DELETED,
            "task",
            instance.name,
            instance.workspace_id,
            instance.pk,
            {"type": instance.type},
        )


@receiver(post_delete, sender=Label, dispatch_uid="audit-label-deleted")
@receiver(post_delete, sender=DetectionLabel, dispatch_uid="audit-detection-label-deleted")
def label_deleted(sender, instance, origin=None, **kwargs) -> None:
    if not _part_of_a_larger_delete(instance, origin):
        _deleted(Action.LABEL_DELETED, "label", instance.name, instance.workspace_id, instance.pk)


@receiver(post_delete, sender=ModelVersion, dispatch_uid="audit-version-deleted")
def version_deleted(sender, instance: ModelVersion, origin=None, **kwargs) -> None:
    if not _part_of_a_larger_delete(instance, origin):
        _deleted(
            Action.VERSION_DELETED,
            "version",
            f"version {instance.version} of task {instance.task_id}",
            instance.workspace_id,
            instance.pk,
            {"task": str(instance.task_id), "version": instance.version},
        )


@receiver(post_save, sender=Webhook, dispatch_uid="audit-webhook-created")
def webhook_created(sender, instance: Webhook, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        audit_record(
            action=Action.WEBHOOK_CREATED,
            target_type="webhook",
            target_id=instance.pk,
            target_name=instance.url,
            workspace_id=instance.workspace_id,
            details={"events": list(instance.events)},
        )


@receiver(post_delete, sender=Webhook, dispatch_uid="audit-webhook-deleted")
def webhook_deleted(sender, instance: Webhook, origin=None, **kwargs) -> None:
    if not _part_of_a_larger_delete(instance, origin):
        _deleted(Action.WEBHOOK_DELETED, "webhook", instance.url, instance.workspace_id, instance.pk)


@receiver(user_locked_out, dispatch_uid="audit-signin-locked-out")
def signin_locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    # django-axes signals every refused attempt while the lock lasts: one event per lock.
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    locked = AuditEvent.objects.filter(
        action=Action.SIGNIN_LOCKED_OUT, target_name=username or "", ip=ip_address, created__gte=since
    )
    if locked.exists():
        return
    audit_record(
        action=Action.SIGNIN_LOCKED_OUT,
        target_type="user",
        target_name=username or "",
        details={"username": username or ""},
        ip=ip_address,
    )


_QUOTA_FIELDS = ("images", "stored_bytes", "versions", "queued_trainings")


def _quota_values(row) -> dict:
    """A quota row's limits (None: the settings default)."""
    return (
        {name: getattr(row, name) for name in _QUOTA_FIELDS}
        if row is not None
        else dict.fromkeys(_QUOTA_FIELDS)
    )


@receiver(pre_save, sender=WorkspaceQuota, dispatch_uid="audit-quota-before")
def quota_before(sender, instance: WorkspaceQuota, raw: bool = False, **kwargs) -> None:
    if not raw:  # what the limits were, for the event post_save records
        instance._audit_before = _quota_values(WorkspaceQuota.objects.filter(pk=instance.pk).first())


@receiver(post_save, sender=WorkspaceQuota, dispatch_uid="audit-quota-changed")
def quota_changed(sender, instance: WorkspaceQuota, raw: bool = False, **kwargs) -> None:
    before, after = getattr(instance, "_audit_before", None), _quota_values(instance)
    if raw or before == after:
        return
    audit_record(
        action=Action.QUOTA_CHANGED,
        target_type="workspace",
        target_id=instance.workspace_id,
        target_name=instance.workspace.name,
        workspace=instance.workspace,
        details={"before": before, "after": after},
    )


@receiver(post_delete, sender=WorkspaceQuota, dispatch_uid="audit-quota-removed")
def quota_removed(sender, instance: WorkspaceQuota, origin=None, **kwargs) -> None:
    if not _part_of_a_larger_delete(instance, origin):  # back to the settings defaults
        _deleted(
            Action.QUOTA_CHANGED,
            "workspace",
            Workspace.objects.filter(pk=instance.workspace_id).values_list("name", flat=True).first() or "",
            instance.workspace_id,
            instance.workspace_id,
            {"before": _quota_values(instance), "after": _quota_values(None)},
        )
