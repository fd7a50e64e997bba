"""Reads of webhooks and their delivery log, always within one workspace."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.ids import parse_uuid

from .models import Webhook, WebhookDelivery


def webhook_list(*, workspace) -> QuerySet[Webhook]:
    return Webhook.objects.filter(workspace=workspace).order_by("created", "id")


def webhook_get(*, workspace, webhook_id) -> Webhook | None:
    webhook_id = parse_uuid(webhook_id)
    if webhook_id is None:
        return None
    return Webhook.objects.filter(workspace=workspace, pk=webhook_id).first()


def delivery_list(*, webhook: Webhook) -> QuerySet[WebhookDelivery]:
    """A webhook's deliveries, newest first, each with its attempts (one query for all of them)."""
    return (
        WebhookDelivery.objects.filter(webhook=webhook)
        .prefetch_related("attempt_log")
        .order_by("-created", "id")
    )


def delivery_recent(*, workspace, limit: int = 20) -> list[WebhookDelivery]:
    """The workspace's latest deliveries to any of its webhooks, with their webhook and attempts."""
    return list(
        WebhookDelivery.objects.filter(workspace=workspace)
        .select_related("webhook")
        .prefetch_related("attempt_log")
        .order_by("-created", "id")[:limit]
    )


def delivery_get(*, workspace, delivery_id) -> WebhookDelivery | None:
    return (
        WebhookDelivery.objects.filter(workspace=workspace, pk=delivery_id)
        .prefetch_related("attempt_log")
        .first()
    )
