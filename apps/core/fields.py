"""Serializer fields shared by the apps (workspace, training-image meta data)."""

from __future__ import annotations

import json

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

MSG_META_DATA_OBJECT = "meta_data must be a JSON object."
MSG_META_DATA_TOO_LARGE = "meta_data is too large: at most {limit} bytes of JSON."
MSG_META_DATA_NUL = "meta_data must not contain the NUL character (\\u0000)."


def meta_data_limit() -> int:
    return settings.VF_MAX_META_DATA_BYTES


# An object, as the server reads it (a JSONField alone is "any JSON value" in the schema).
@extend_schema_field({"type": "object", "additionalProperties": {}})
class MetaDataField(serializers.JSONField):
    """A JSON object of the caller's own data, at most ``VF_MAX_META_DATA_BYTES`` serialized.

    From multipart forms it arrives as a JSON string. NUL characters are refused: PostgreSQL's
    jsonb cannot store them (a 500 there), so SQLite refuses them too.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "JSON object of your own data (at most 64 KiB as JSON).")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data) if data.strip() else {}
            except (ValueError, RecursionError):
                raise serializers.ValidationError(MSG_META_DATA_OBJECT) from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise serializers.ValidationError(MSG_META_DATA_OBJECT)
        try:
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        except (ValueError, TypeError, RecursionError):
            raise serializers.ValidationError(MSG_META_DATA_OBJECT) from None
        if len(text.encode()) > meta_data_limit():
            raise serializers.ValidationError(MSG_META_DATA_TOO_LARGE.format(limit=meta_data_limit()))
        if "\\u0000" in json.dumps(data):
            raise serializers.ValidationError(MSG_META_DATA_NUL)
        return super().to_internal_value(data)
