"""How a refused write is described in the schema of each endpoint that can pass a quota."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class QuotaExceededSerializer(serializers.Serializer):
    """A 403's body. ``quota``, ``limit`` and ``used`` come with a quota's refusal; a 403 for another
    reason (a scoped token outside its scope) has ``detail`` only."""

    detail = serializers.CharField(help_text="What was refused and what to do.")
    quota = serializers.ChoiceField(
        choices=["images", "stored_bytes", "versions", "queued_trainings"],
        required=False,
        help_text="The limit passed.",
    )
    limit = serializers.IntegerField(required=False, min_value=0, help_text="The workspace's limit.")
    used = serializers.IntegerField(required=False, min_value=0, help_text="The use before this request.")


QUOTA_EXCEEDED = {
    403: OpenApiResponse(
        response=QuotaExceededSerializer,
        description=(
            "A workspace quota would be passed (set by the administrator; `quota`, `limit`, `used` "
            "name it) and nothing was stored, or a scoped token's scope does not cover the route"
        ),
    )
}
