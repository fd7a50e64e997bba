"""The keys of scoped tokens: how they look, and the hash that is all the database keeps.

A scoped key is ``vfs_`` and 40 URL-safe characters (240 random bits). The prefix tells it from
a user's token (40 hex digits, never an underscore) in the same ``Authorization: Token <key>``
header, so the Ximilar client sends either unchanged.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "vfs_"
# The start of a key shown in lists: the prefix and 8 characters (48 bits), enough to tell a
# workspace's tokens apart, far too few to guess the rest from.
VISIBLE_LENGTH = len(KEY_PREFIX) + 8
KEY_LENGTH = len(KEY_PREFIX) + 40


def key_new() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)  # 30 bytes: 40 characters


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_scoped_key(key: str) -> bool:
    return key.startswith(KEY_PREFIX)
