"""Reads of scoped tokens: a workspace's list, one of them, and the token a key names."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.ids import parse_uuid

from .keys import key_hash
from .models import ScopedToken


def scoped_token_list(*, workspace) -> QuerySet[ScopedToken]:
    return (
        ScopedToken.objects.filter(workspace=workspace).select_related("created_by").order_by("created", "id")
    )


def scoped_token_get(*, workspace, token_id) -> ScopedToken | None:
    token_uuid = parse_uuid(token_id)
    if token_uuid is None:
        return None
    return scoped_token_list(workspace=workspace).filter(pk=token_uuid).first()


def scoped_token_for_key(*, key: str) -> ScopedToken | None:
    """The token of ``key`` with its workspace and the workspace's owner (one query), or None."""
    return (
        ScopedToken.objects.select_related("workspace", "workspace__owner")
        .filter(key_hash=key_hash(key))
        .first()
    )
