"""Classify request and response shapes (Ximilar ``classify/`` and Vize ``/v1/classify/``).

The input serializers validate the request; the response is built by the service as plain dicts
(records echo arbitrary keys), and the output serializers here describe it for the schema.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

MSG_TASK_REQUIRED = "Send the task's id as task_id (or task)."

RECORD_SCHEMA = {
    "type": "object",
    "description": (
        "One image: `_url` (fetched by the server; public addresses only) or `_base64` (bare or "
        "`data:image/...;base64,` prefixed). Any other key (`_id`, custom fields) is echoed back."
    ),
    "properties": {
        "_url": {"type": "string", "format": "uri"},
        "_base64": {"type": "string"},
    },
    "additionalProperties": True,
}


@extend_schema_field(RECORD_SCHEMA)
class RecordField(serializers.JSONField):
    """Any JSON value: a record that is not an object gets its own 400 ``_status``."""


class _RecordsRequestSerializer(serializers.Serializer):
    """What classify and detect share: the task, the version and 1 to 10 records."""

    task_id = serializers.UUIDField(required=False, allow_null=True, help_text="The task (or send `task`).")
    task = serializers.UUIDField(
        required=False, allow_null=True, help_text="Alias of `task_id` (Ximilar docs)."
    )
    version = serializers.IntegerField(
        required=False, allow_null=True, help_text="A TRAINED version; default the production version."
    )
    records = serializers.ListField(
        child=RecordField(),
        allow_empty=True,  # the service answers 0 records with a detail, like 11
        help_text=f"1 to {settings.VF_CLASSIFY_MAX_RECORDS} records.",
    )
    store_images = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Store each record as a training image of the workspace and add `_stored_image_id`.",
    )
    workspace = serializers.UUIDField(required=False, help_text="Workspace of the task; default yours.")

    # What the service refuses, said in the schema too (apps/core/schema.py). "task_id or task"
    # is not: Schemathesis cannot fuzz that anyOf beside the records (tests/contract/schemathesis.toml).
    schema_refinements = {
        "properties": {"records": {"minItems": 1, "maxItems": settings.VF_CLASSIFY_MAX_RECORDS}},
    }

    def validate(self, attrs):
        task_id = attrs.get("task_id") or attrs.get("task")
        if task_id is None:
            raise serializers.ValidationError({"task_id": [MSG_TASK_REQUIRED]})
        attrs["task_id"] = task_id
        return attrs


class ClassifyRequestSerializer(_RecordsRequestSerializer):
    threshold = serializers.FloatField(
        required=False, allow_null=True, help_text="Leave labels with a lower probability out of `labels`."
    )
    descriptor = serializers.BooleanField(
        required=False, default=False, help_text="Add `_descriptor`: the L2-normalised feature vector."
    )


class DetectRequestSerializer(_RecordsRequestSerializer):
    """Body of ``POST detection/v2/detect/`` (``ximilar-client``'s ``detect_on_task``)."""

    keep_prob = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0.0,
        max_value=1.0,
        help_text="Only objects with at least this probability are returned (default 0.3).",
    )


class V1ClassifyRequestSerializer(serializers.Serializer):
    task = serializers.UUIDField(required=False, allow_null=True, help_text="The task.")
    task_id = serializers.UUIDField(required=False, allow_null=True, help_text="Alias of `task`.")
    image_file = serializers.FileField(required=False, help_text="The image (multipart).")
    image_url = serializers.URLField(required=False, help_text="Or a URL the server fetches.")
    image_base64 = serializers.CharField(required=False, help_text="Or the image as base64.")
    version = serializers.IntegerField(required=False, allow_null=True, help_text="Default: production.")

    def validate(self, attrs):
        task_id = attrs.get("task") or attrs.get("task_id")
        if task_id is None:
            raise serializers.ValidationError({"task": [MSG_TASK_REQUIRED]})
        attrs["task_id"] = task_id
        return attrs


# --------------------------------------------------------------------------- responses (schema)


class StatusSerializer(serializers.Serializer):
    code = serializers.IntegerField()
    text = serializers.CharField()


class LabelProbSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    prob = serializers.FloatField(required=False, help_text="multi_class, multi_label")
    value = serializers.FloatField(required=False, help_text="regression")


@extend_schema_field(
    {
        "type": "object",
        "properties": {"processing time": {"type": "number", "description": "Seconds spent on the call."}},
        "required": ["processing time"],
    }
)
class StatisticsField(serializers.JSONField):
    pass


class ClassifiedRecordSerializer(serializers.Serializer):
    """One answered record; the request's other keys (not `_base64`) are echoed as well."""

    _status = StatusSerializer(help_text="200 OK, or 400 with why the record could not be read.")
    _width = serializers.IntegerField(required=False)
    _height = serializers.IntegerField(required=False)
    best_label = LabelProbSerializer(required=False)
    best_labels = LabelProbSerializer(
        many=True, required=False, help_text="multi_label: labels over their threshold"
    )
    labels = LabelProbSerializer(many=True, required=False, help_text="sorted by prob, descending")
    _descriptor = serializers.ListField(child=serializers.FloatField(), required=False)
    _stored_image_id = serializers.UUIDField(required=False)


class ClassifyResponseSerializer(serializers.Serializer):
    task_id = serializers.UUIDField()
    version = serializers.IntegerField()
    status = StatusSerializer()
    statistics = StatisticsField()
    records = ClassifiedRecordSerializer(many=True)


class DetectedObjectSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The label's output_name (or name)")
    id = serializers.UUIDField(help_text="The detection label's id")
    bound_box = serializers.ListField(
        child=serializers.IntegerField(), help_text="[xmin, ymin, xmax, ymax] in pixels of the image as sent"
    )
    prob = serializers.FloatField()


class DetectedRecordSerializer(serializers.Serializer):
    """One answered record; the request's other keys (not `_base64`) are echoed as well."""

    _status = StatusSerializer(help_text="200 OK, or 400 with why the record could not be read.")
    _width = serializers.IntegerField(required=False)
    _height = serializers.IntegerField(required=False)
    _objects = DetectedObjectSerializer(many=True, required=False, help_text="most probable first")
    _stored_image_id = serializers.UUIDField(required=False)


class DetectResponseSerializer(serializers.Serializer):
    task_id = serializers.UUIDField()
    version = serializers.IntegerField()
    status = StatusSerializer()
    statistics = StatisticsField()
    records = DetectedRecordSerializer(many=True)


class V1ClassifyResponseSerializer(serializers.Serializer):
    best_label = LabelProbSerializer()
    best_labels = LabelProbSerializer(many=True, required=False, help_text="multi_label only")
    labels = LabelProbSerializer(many=True)
