"""Shapes of similarity's endpoints: the search request and answer, a descriptor run, the status."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.images import storage

from .models import DescriptorRun

MSG_ONE_SOURCE = "A record takes exactly one of _id, _url or _base64."
SOURCES = ("_id", "_url", "_base64")


class SimilarRecordSerializer(serializers.Serializer):
    """One query image: an image of the workspace (``_id``), or an image to read (``_url`` or
    ``_base64``, as classify reads them)."""

    schema_refinements = {"oneOf": [{"required": [source]} for source in SOURCES]}

    _id = serializers.UUIDField(required=False, help_text="A training image of the workspace.")
    _url = serializers.CharField(
        required=False, help_text="http(s) URL of a public image; the server fetches it."
    )
    _base64 = serializers.CharField(required=False, help_text="Base64 image, bare or data-URL prefixed.")

    def validate(self, attrs):
        if sum(source in attrs for source in SOURCES) != 1:
            raise serializers.ValidationError(MSG_ONE_SOURCE)
        return attrs


class SimilarRequestSerializer(serializers.Serializer):
    records = SimilarRecordSerializer(
        many=True, help_text=f"1 to {settings.VF_CLASSIFY_MAX_RECORDS} records."
    )
    k = serializers.IntegerField(
        required=False,
        default=10,
        min_value=1,
        max_value=settings.VF_SIMILARITY_MAX_K,
        help_text="How many similar images per record (nearest first).",
    )
    workspace = serializers.UUIDField(required=False, help_text="Workspace of the task; default yours.")

    schema_refinements = {
        "properties": {"records": {"minItems": 1, "maxItems": settings.VF_CLASSIFY_MAX_RECORDS}},
    }

    def validate_records(self, value):
        limit = settings.VF_CLASSIFY_MAX_RECORDS
        if not value:
            raise serializers.ValidationError("Send at least one record.")
        if len(value) > limit:
            raise serializers.ValidationError(f"At most {limit} records per request; got {len(value)}.")
        return value


class SimilarImageSerializer(serializers.Serializer):
    """A similar image: its id, cosine distance between descriptors (0 = same direction) and links."""

    _id = serializers.UUIDField(source="image.pk")
    distance = serializers.FloatField(help_text="Cosine distance of the descriptors, 0 (identical) to 2.")
    img_path = serializers.SerializerMethodField(help_text="Signed, expiring URL of the image.")
    thumb_img_path = serializers.SerializerMethodField(help_text="Signed, expiring URL of the thumbnail.")

    @extend_schema_field(OpenApiTypes.URI)
    def get_img_path(self, obj) -> str:
        return storage.signed_url(obj["image"].file, self.context.get("request"))

    @extend_schema_field(OpenApiTypes.URI)
    def get_thumb_img_path(self, obj) -> str:
        return storage.signed_url(obj["image"].thumbnail, self.context.get("request"))


class RecordStatusSerializer(serializers.Serializer):
    code = serializers.IntegerField()
    text = serializers.CharField()


class SimilarAnswerSerializer(serializers.Serializer):
    """One answered record: its ``_id`` or ``_url`` echoed, ``_status``, and ``_similar`` when the
    record could be read."""

    _id = serializers.UUIDField(required=False)
    _url = serializers.CharField(required=False)
    _status = RecordStatusSerializer(help_text="200 OK, or the reason the record could not be read.")
    _similar = SimilarImageSerializer(many=True, required=False, help_text="Nearest first.")

    def to_representation(self, instance):
        answer = {key: instance[key] for key in ("_url", "_status") if key in instance}
        if "_id" in instance:
            answer = {"_id": str(instance["_id"]), **answer}
        if "_similar" in instance:
            answer["_similar"] = SimilarImageSerializer(
                instance["_similar"], many=True, context=self.context
            ).data
        return answer


class SimilarResultSerializer(serializers.Serializer):
    task_id = serializers.UUIDField()
    version = serializers.IntegerField(help_text="The version whose descriptors answered.")
    records = SimilarAnswerSerializer(many=True)


class DescriptorRunSerializer(serializers.ModelSerializer):
    """A computation of descriptors: ``progress`` (0 to 100) while ``status`` is QUEUED or RUNNING."""

    task_id = serializers.UUIDField(read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True)

    class Meta:
        model = DescriptorRun
        fields = [
            "id",
            "task_id",
            "version",
            "status",
            "progress",
            "done",
            "total",
            "error",
            "created",
            "finished",
        ]
        read_only_fields = fields


class SimilarStatusSerializer(serializers.Serializer):
    task_id = serializers.UUIDField()
    ready = serializers.BooleanField(help_text="Whether searches can be answered now.")
    version = serializers.IntegerField(
        allow_null=True, help_text="The version whose descriptors answer searches."
    )
    descriptors = serializers.IntegerField(help_text="Images described by that version.")
    run = DescriptorRunSerializer(allow_null=True, help_text="The latest computation, or null.")
