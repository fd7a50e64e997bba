from __future__ import annotations

from rest_framework import serializers

from .models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", help_text="Username of who did it (empty: the system)")
    action = serializers.ChoiceField(choices=AuditEvent.Action.choices)
    details = serializers.DictField(
        help_text="What else the event records (a task's type, a version's number)"
    )

    class Meta:
        model = AuditEvent
        fields = ["id", "created", "actor", "action", "target_type", "target_id", "target_name", "details"]
        read_only_fields = fields
