"""Token authentication with the token -> user (and default workspace) lookup cached.

Every API call presents a token, and most act on the caller's default workspace: two queries on
each request before any work. Both rows are kept in the Django cache (Redis when configured, so
shared by every process and machine) under a hash of the key, never the key itself, for
``VF_TOKEN_CACHE_SECONDS``; the user's password hash is never cached. Without a shared cache
(the embedded default keeps one per process) nothing is cached: a revocation could not reach the
other processes' copies.

Revocation stays immediate: deleting a token (API, admin, or the cascade of a user's deletion),
saving its user (deactivated, renamed) and saving or deleting its default workspace delete the
cached entry in the process that writes, before any later request can read it
(apps/workspaces/signals.py). A cache that is down answers nothing, and the lookup falls back to
the database. Membership of other workspaces is never cached: tenancy checks it per request.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from .models import Workspace

logger = logging.getLogger(__name__)

# The attribute of a request's user holding its default workspace when the token cache had it
# (services.workspace_ensure_default reads it).
CACHED_DEFAULT_WORKSPACE = "cached_default_workspace"


def token_cache_key(key: str) -> str:
    return "auth-token:" + hashlib.sha256(key.encode()).hexdigest()


def token_cache_forget(*keys: str) -> None:
    cache.delete_many([token_cache_key(key) for key in keys])


def _columns(model) -> list[str]:
    """The model's columns; for the user, all but the password hash, which never goes to the cache."""
    return [field.attname for field in model._meta.concrete_fields if field.attname != "password"]


def _row(instance) -> dict:
    return {name: getattr(instance, name) for name in _columns(type(instance))}


def _instance(model, values):
    """The row as loaded from the database with only the cached columns. For the user the
    password is thus deferred: reading it queries the database, and ``save()`` writes only the
    loaded fields (Django's rule for deferred fields), so the missing hash never overwrites the
    stored one. None when the row was cached by another version of the model."""
    columns = _columns(model)
    if not isinstance(values, dict) or not set(columns) <= set(values):
        return None
    return model.from_db(DEFAULT_DB_ALIAS, columns, [values[name] for name in columns])


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's ``Authorization: Token <key>``, answered from the cache when the key was seen lately."""

    def authenticate_credentials(self, key):
        seconds = settings.VF_TOKEN_CACHE_SECONDS
        cache_key = token_cache_key(key)
        try:
            cached = cache.get(cache_key) if seconds else None
        except Exception:  # noqa: BLE001 - a cache outage must not lock everyone out
            logger.warning("token cache unreachable", exc_info=True)
            cached = None
        if isinstance(cached, dict):
            user = _instance(get_user_model(), cached.get("user"))
            if user is not None and user.is_active:
                workspace = cached.get("workspace")
                if workspace is not None:
                    setattr(user, CACHED_DEFAULT_WORKSPACE, _instance(Workspace, workspace))
                return user, Token(key=key, user=user)
        user, token = super().authenticate_credentials(key)  # 401 for an unknown key or inactive user
        workspace = Workspace.objects.filter(owner=user, is_default=True).first()
        if workspace is not None:
            setattr(user, CACHED_DEFAULT_WORKSPACE, workspace)
        if not seconds:
            return user, token
        entry = {"user": _row(user), "workspace": _row(workspace) if workspace is not None else None}
        try:
            cache.set(cache_key, entry, seconds)
        except Exception:  # noqa: BLE001
            logger.warning("token cache unreachable", exc_info=True)
        return user, token
