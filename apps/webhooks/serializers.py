"""Serializers of the webhook endpoints. The secret is in the create answer only."""

from __future__ import annotations

import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from . import events as ev
from .models import Webhook, WebhookAttempt, WebhookDelivery

EVENT_CHOICES = [(name, description) for name, description in ev.EVENTS.items()]
EVENTS_HELP = "Events to send: " + "; ".join(f"`{name}`: {text}" for name, text in ev.EVENTS.items()) + "."


class WebhookSerializer(serializers.ModelSerializer):
    workspace = serializers.UUIDField(source="workspace_id", read_only=True)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_CHOICES), help_text=EVENTS_HELP
    )

    class Meta:
        model = Webhook
        fields = ["id", "workspace", "url", "events", "description", "is_active", "created", "updated"]
        read_only_fields = fields


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="The key of the `X-Signature-256` HMAC of each delivery. Shown in this answer only: "
        "keep it now.",
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookInputSerializer(serializers.Serializer):
    """A new webhook (POST) or its fields to change (PUT: url and events required; PATCH: any)."""

    url = serializers.CharField(
        max_length=2000,
        help_text="http(s) URL the events are POSTed to; it must resolve to a public address unless an "
        "administrator allows its host (VF_WEBHOOKS_ALLOWED_HOSTS).",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_CHOICES),
        allow_empty=False,
        min_length=1,  # what allow_empty says, in a form the schema states (minItems)
        max_length=len(ev.EVENTS),
        help_text=EVENTS_HELP,
    )
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False, help_text="Default true; false sends nothing.")
    workspace = serializers.UUIDField(
        required=False, write_only=True, help_text="Workspace to act on (else the caller's default)."
    )


class WebhookAttemptSerializer(serializers.ModelSerializer):
    attempt = serializers.IntegerField(source="number", read_only=True, help_text="1 for the first attempt")
    status_code = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="the receiver's HTTP status; null when no answer came"
    )
    duration_ms = serializers.FloatField(read_only=True, help_text="from connecting to the answer's status")

    class Meta:
        model = WebhookAttempt
        fields = ["attempt", "status_code", "error", "duration_ms", "created"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    webhook = serializers.UUIDField(source="webhook_id", read_only=True)
    status = serializers.ChoiceField(
        choices=WebhookDelivery.Status.choices,
        read_only=True,
        help_text="PENDING (waiting for an attempt or a retry), DELIVERED (a 2xx answer) or FAILED "
        "(out of attempts, or refused for good).",
    )
    response_status = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="of the latest attempt"
    )
    payload = serializers.SerializerMethodField(help_text="the JSON body sent, as an object")
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook",
            "event",
            "status",
            "attempts",
            "response_status",
            "error",
            "created",
            "next_attempt",
            "finished",
            "payload",
            "attempt_log",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField())
    def get_payload(self, delivery: WebhookDelivery) -> dict:
        return json.loads(delivery.body)
