"""Writes for users, workspaces and memberships."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from rest_framework.authtoken.models import Token

from apps.core.errors import ConflictError, DomainError, NotFoundError, PermissionDeniedError

from .models import Membership, Workspace

DEFAULT_WORKSPACE_NAME = "Default"
MSG_ONLY_OWNER = "Only the owner of the workspace can do this."
MSG_USER_NOT_FOUND = "No user with this username or email."
MSG_ALREADY_MEMBER = "This user is already a member of the workspace."
MSG_OWNER_CANNOT_LEAVE = "The owner cannot be removed from the workspace."
MSG_DEFAULT_CANNOT_BE_DELETED = "A user's default workspace cannot be deleted."
MSG_NOT_MEMBER = "This user is not a member of the workspace."
MSG_USERNAME_TAKEN = "A user with this username already exists."

User = get_user_model()


@transaction.atomic
def workspace_create(
    *, owner, name: str, meta_data: dict | None = None, is_default: bool = False
) -> Workspace:
    """Create a workspace owned by ``owner``, who becomes its first member (role owner)."""
    workspace = Workspace.objects.create(
        owner=owner, name=name, meta_data=meta_data or {}, is_default=is_default
    )
    Membership.objects.create(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    return workspace


def workspace_ensure_default(*, user) -> Workspace:
    """Return the user's ``Default`` workspace, creating it when it is missing.

    Users made by ``createsuperuser`` or the admin did not go through ``user_create``; creating the
    default lazily means every user has one the first time it matters. The unique constraint settles
    a race between two first requests.
    """
    # Token authentication may have brought it along from its cache (apps/workspaces/authentication.py).
    workspace = getattr(user, "cached_default_workspace", None)
    if workspace is not None:
        return workspace
    workspace = Workspace.objects.filter(owner=user, is_default=True).first()
    if workspace is not None:
        return workspace
    try:
        return workspace_create(owner=user, name=DEFAULT_WORKSPACE_NAME, is_default=True)
    except IntegrityError:
        return Workspace.objects.get(owner=user, is_default=True)


@transaction.atomic
def user_create(*, username: str, email: str = "", password: str | None = None, is_staff: bool = False):
    """Create a user with a ``Default`` workspace and an API token; return ``(user, token_key)``."""
    if User.objects.filter(username=username).exists():
        raise DomainError(MSG_USERNAME_TAKEN)
    user = User.objects.create_user(username=username, email=email, password=password)
    if is_staff:
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    workspace_ensure_default(user=user)
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key


def token_get_or_create(*, user) -> str:
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def _require_owner(workspace: Workspace, user) -> None:
    if workspace.owner_id != user.pk:
        raise PermissionDeniedError(MSG_ONLY_OWNER)


def workspace_update(*, workspace: Workspace, actor, name: str | None = None, meta_data: dict | None = None):
    """Rename or change the meta data of a workspace; any member may."""
    if name is not None:
        workspace.name = name
    if meta_data is not None:
        workspace.meta_data = meta_data
    workspace.save(update_fields=["name", "meta_data"])
    return workspace


def workspace_delete(*, workspace: Workspace, actor) -> None:
    """Delete a workspace and everything in it; only its owner may, and never the default one."""
    _require_owner(workspace, actor)
    if workspace.is_default:
        raise ConflictError(MSG_DEFAULT_CANNOT_BE_DELETED)
    workspace.delete()


def membership_add(*, workspace: Workspace, actor, username_or_email: str) -> Membership:
    """Add a user, found by username or email, to the workspace as a member (owner only)."""
    _require_owner(workspace, actor)
    user = User.objects.filter(Q(username=username_or_email) | Q(email__iexact=username_or_email)).first()
    if user is None or not username_or_email:
        raise NotFoundError(MSG_USER_NOT_FOUND)
    if Membership.objects.filter(workspace=workspace, user=user).exists():
        raise DomainError(MSG_ALREADY_MEMBER)
    return Membership.objects.create(workspace=workspace, user=user, role=Membership.Role.MEMBER)


def membership_remove(*, workspace: Workspace, actor, user_id: int) -> None:
    """Remove a member from the workspace (owner only; the owner stays)."""
    _require_owner(workspace, actor)
    if workspace.owner_id == user_id:
        raise ConflictError(MSG_OWNER_CANNOT_LEAVE)  # a state the service keeps, not a bad request
    deleted, _ = Membership.objects.filter(workspace=workspace, user_id=user_id).delete()
    if not deleted:
        raise NotFoundError(MSG_NOT_MEMBER)
