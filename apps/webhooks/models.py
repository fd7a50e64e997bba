"""Webhooks of a workspace, their deliveries, and every attempt of a delivery."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Webhook(models.Model):
    """A URL the workspace's events are posted to, signed with ``secret``.

    The secret is kept as it is, not hashed: signing a delivery needs the key itself (HMAC), as a
    token's key is needed to check it. The API shows it once, in the answer that creates it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=2000)
    events = models.JSONField(default=list)  # names from apps/webhooks/events.py
    description = models.CharField(max_length=255, blank=True, default="")
    is_active = models.BooleanField(default=True)
    secret = models.CharField(max_length=128)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.url} ({', '.join(self.events)})"


class WebhookDelivery(models.Model):
    """One event sent to one webhook: the exact body signed and sent (every attempt sends the
    same bytes), where it stands, and the outcome of its latest attempt."""

    class Status(models.TextChoices):
        PENDING = "PENDING"  # waiting for its first attempt or a retry
        DELIVERED = "DELIVERED"  # the receiver answered 2xx
        FAILED = "FAILED"  # out of attempts, or refused for good (an address the guard refuses)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("workspaces.Workspace", on_delete=models.CASCADE, related_name="+")
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    body = models.TextField()  # the JSON sent, byte for byte (UTF-8)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)  # of the latest attempt
    error = models.TextField(blank=True, default="")  # of the latest attempt
    created = models.DateTimeField(auto_now_add=True)
    next_attempt = models.DateTimeField(null=True, blank=True)  # when a retry is due
    finished = models.DateTimeField(null=True, blank=True)  # DELIVERED or FAILED

    class Meta:
        ordering = ["-created", "id"]
        indexes = [
            models.Index(fields=["webhook", "-created"], name="webhook_delivery_created"),
            models.Index(fields=["workspace", "-created"], name="webhook_delivery_ws_created"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.webhook_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: its number, the answer's status code or the error, how long it took."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()  # 1 for the first attempt
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.FloatField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["delivery", "number", "id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error}"
