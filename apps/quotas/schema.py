"""How a refused write is described in the schema of each endpoint that can pass a quota."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class QuotaExceededSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What was refused and what to do.")
    quota = serializers.ChoiceField(
        choices=["images", "stored_bytes", "versions", "queued_trainings"], help_text="The limit passed."
    )
    limit = serializers.IntegerField(help_text="The workspace's limit.")
    used = serializers.IntegerField(help_text="The use before this request.")


QUOTA_EXCEEDED = {
    403: OpenApiResponse(
        response=QuotaExceededSerializer,
        description="A workspace quota would be passed (set by the administrator); nothing was stored",
    )
}
