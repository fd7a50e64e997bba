"""Token authentication with the token -> user lookup cached.

Every API call presents a token; looking it up is a query (token joined to its user) on each
request. The user's columns (not the password hash) are kept in the Django cache (Redis when
configured, so shared by every process and machine) under a hash of the key, never the key
itself, for ``TOKEN_CACHE_SECONDS``.

Revocation stays immediate: deleting a token (API, admin, or the cascade of a user's deletion)
and saving its user (deactivated, made staff, renamed) delete the cached entry in the same process
that writes, before any later request can read it (apps/workspaces/signals.py). A cache that is
down answers nothing, and the lookup falls back to the database.
"""

from __future__ import annotations

import hashlib
import logging

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

logger = logging.getLogger(__name__)

TOKEN_CACHE_SECONDS = 300


def token_cache_key(key: str) -> str:
    return "auth-token:" + hashlib.sha256(key.encode()).hexdigest()


def token_cache_forget(key: str) -> None:
    cache.delete(token_cache_key(key))


def _fields() -> list[str]:
    """The user's columns but the password hash, which never goes to the cache."""
    return [field.attname for field in get_user_model()._meta.concrete_fields if field.attname != "password"]


def _cached(user) -> dict:
    return {name: getattr(user, name) for name in _fields()}


def _user_from(values: dict):
    """The user as loaded with the password deferred: reading it queries the database, and a
    ``save()`` writes only the loaded fields (Django's rule for deferred fields), so the missing
    hash can never overwrite the stored one."""
    fields = _fields()
    if not isinstance(values, dict) or not set(fields) <= set(values):
        return None  # written by another version of the user model: look it up again
    return get_user_model().from_db(DEFAULT_DB_ALIAS, fields, [values[name] for name in fields])


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's ``Authorization: Token <key>``, answered from the cache when the key was seen lately."""

    def authenticate_credentials(self, key):
        cache_key = token_cache_key(key)
        try:
            user = cache.get(cache_key)
        except Exception:  # noqa: BLE001 - a cache outage must not lock everyone out
            logger.warning("token cache unreachable", exc_info=True)
            user = None
        user = _user_from(user) if user is not None else None
        if user is not None and user.is_active:
            return user, Token(key=key, user=user)
        user, token = super().authenticate_credentials(key)  # 401 for an unknown key or inactive user
        try:
            cache.set(cache_key, _cached(user), TOKEN_CACHE_SECONDS)
        except Exception:  # noqa: BLE001
            logger.warning("token cache unreachable", exc_info=True)
        return user, token
