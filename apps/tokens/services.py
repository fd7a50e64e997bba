"""Issue and revoke scoped tokens; note when one was last used.

Only the workspace's owner manages its tokens (as its members and webhooks). The key is made
here and returned once to the caller; only its hash and visible start are stored. The audit log
hears of both changes from the model's signals (apps/audit/signals.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.core.errors import ConflictError, DomainError, PermissionDeniedError

from .keys import VISIBLE_LENGTH, key_hash, key_new
from .models import ScopedToken

MAX_TOKENS_PER_WORKSPACE = 50
MAX_NAME_LENGTH = 100
# last_used is written at most this often per token: a write on every request would cost more
# than the request's own reads; a list needs the minute, not the millisecond.
LAST_USED_RESOLUTION = timedelta(minutes=1)

MSG_ONLY_OWNER = "Only the owner of the workspace can manage its API tokens."
MSG_NAME_BLANK = "Give the token a name."
MSG_NAME_TOO_LONG = f"A token's name has at most {MAX_NAME_LENGTH} characters."
MSG_SCOPE_UNKNOWN = "Unknown scope {scope!r}; the scopes are " + ", ".join(ScopedToken.Scope.values) + "."
MSG_EXPIRES_PAST = "The expiry must be in the future."
MSG_TOO_MANY = (
    f"A workspace has at most {MAX_TOKENS_PER_WORKSPACE} API tokens; revoke one before issuing another."
)


def scoped_token_owner_check(*, workspace, user) -> None:
    """Raise PermissionDeniedError (403) unless ``user`` owns ``workspace``."""
    if workspace.owner_id != user.pk:
        raise PermissionDeniedError(MSG_ONLY_OWNER)


@transaction.atomic
def scoped_token_create(
    *, workspace, actor, name: str, scope: str, expires: datetime | None = None
) -> tuple[ScopedToken, str]:
    """Issue a token for ``workspace`` and return it with its key, which is not stored: the caller
    shows it once. Refused for a non-owner (403), a blank or long name, an unknown scope, an expiry
    in the past (400), or a workspace at its limit of tokens (409)."""
    scoped_token_owner_check(workspace=workspace, user=actor)
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        raise DomainError(MSG_NAME_BLANK)
    if len(name) > MAX_NAME_LENGTH:
        raise DomainError(MSG_NAME_TOO_LONG)
    if scope not in ScopedToken.Scope.values:
        raise DomainError(MSG_SCOPE_UNKNOWN.format(scope=scope))
    if expires is not None and expires <= timezone.now():
        raise DomainError(MSG_EXPIRES_PAST)
    # Counted under the workspace's row lock, so two concurrent requests cannot both pass the limit.
    type(workspace).objects.select_for_update().filter(pk=workspace.pk).first()
    if ScopedToken.objects.filter(workspace=workspace).count() >= MAX_TOKENS_PER_WORKSPACE:
        raise ConflictError(MSG_TOO_MANY)
    key = key_new()
    token = ScopedToken.objects.create(
        workspace=workspace,
        name=name,
        scope=scope,
        prefix=key[:VISIBLE_LENGTH],
        key_hash=key_hash(key),
        created_by=actor,
        expires=expires,
    )
    return token, key


def scoped_token_revoke(*, token: ScopedToken, actor) -> None:
    """Revoke (delete) ``token``: its key is refused from the next request on, in every process."""
    scoped_token_owner_check(workspace=token.workspace, user=actor)
    token.delete()


def scoped_token_touch(*, token: ScopedToken) -> None:
    """Note that ``token`` was used now, at most once per LAST_USED_RESOLUTION."""
    now = timezone.now()
    if token.last_used is not None and now - token.last_used < LAST_USED_RESOLUTION:
        return
    ScopedToken.objects.filter(pk=token.pk).update(last_used=now)
    token.last_used = now
