"""Scoped API tokens: a named key for one workspace, limited by its scope."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class ScopedToken(models.Model):
    """A key a workspace's owner issued for that workspace only, limited to ``scope``.

    Only the SHA-256 of the key is stored (the key has 240 random bits, so a fast hash is enough:
    nothing can be guessed from it), with its first characters (``prefix``) to tell tokens apart
    in a list. The key itself is shown once, in the answer that creates it. Revoking deletes the
    row, so the key is unknown from the next request on, in every process (nothing caches it).
    """

    class Scope(models.TextChoices):
        READ_ONLY = "read-only", "Read-only"
        CLASSIFY_ONLY = "classify-only", "Classify-only"
        FULL = "full", "Full"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="scoped_tokens"
    )
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope}, {self.prefix}...)"
