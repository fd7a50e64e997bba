"""Shapes of the labelling loop's endpoints: suggestions, their runs, pre-labels, pool uploads."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.ids import UUID_LIST_PATTERN, parse_uuid_list
from apps.images import storage

from .models import Suggestion, SuggestionRun

MAX_SUGGESTIONS = 100  # per call, as a page of the image list


class SuggestionRunSerializer(serializers.ModelSerializer):
    """A scoring of the pool: ``progress`` (0 to 100) while ``status`` is QUEUED or RUNNING."""

    task_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = SuggestionRun
        fields = [
            "id",
            "task_id",
            "version",
            "status",
            "progress",
            "scored",
            "total",
            "error",
            "created",
            "finished",
        ]
        read_only_fields = fields


class LabelGuessSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    prob = serializers.FloatField()


class ObjectGuessSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="Detection label id.")
    name = serializers.CharField()
    bound_box = serializers.ListField(
        child=serializers.IntegerField(), help_text="[x1, y1, x2, y2] in pixels."
    )
    prob = serializers.FloatField()


class GuessSerializer(serializers.Serializer):
    """The model's answer: ``best_label`` and ``labels`` by probability (multi_label also
    ``best_labels`` over their thresholds) as classify answers, or ``objects`` for detection."""

    best_label = LabelGuessSerializer(required=False, allow_null=True)
    best_labels = LabelGuessSerializer(many=True, required=False)
    labels = LabelGuessSerializer(many=True, required=False)
    objects = ObjectGuessSerializer(many=True, required=False)


class SuggestionSerializer(serializers.ModelSerializer):
    image_id = serializers.UUIDField(read_only=True)
    img_path = serializers.SerializerMethodField(help_text="Signed, expiring URL of the image.")
    thumb_img_path = serializers.SerializerMethodField(help_text="Signed, expiring URL of the thumbnail.")
    uncertainty = serializers.FloatField(help_text="How unsure the model is, 0 (sure) to 1 (a coin toss).")
    guess = GuessSerializer()

    class Meta:
        model = Suggestion
        fields = ["image_id", "rank", "uncertainty", "img_path", "thumb_img_path", "guess"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_img_path(self, obj) -> str:
        return storage.signed_url(obj.image.file, self.context.get("request"))

    @extend_schema_field(OpenApiTypes.URI)
    def get_thumb_img_path(self, obj) -> str:
        return storage.signed_url(obj.image.thumbnail, self.context.get("request"))


class SuggestionListSerializer(serializers.Serializer):
    task_id = serializers.UUIDField()
    run = SuggestionRunSerializer(allow_null=True, help_text="The latest scoring of the pool, or null.")
    version = serializers.IntegerField(allow_null=True, help_text="The version whose guesses these are.")
    results = SuggestionSerializer(many=True)


class SuggestionQuerySerializer(serializers.Serializer):
    count = serializers.IntegerField(required=False, default=20, min_value=1, max_value=MAX_SUGGESTIONS)
    skip = serializers.RegexField(
        UUID_LIST_PATTERN,
        required=False,
        default="",
        help_text="Comma-separated image ids to leave out.",
        error_messages={"invalid": "Give image ids (UUIDs), comma-separated."},
    )

    def validate_skip(self, value):
        ids = parse_uuid_list(value) if value else []
        if ids is None:  # the pattern's "$" lets a trailing newline through; fullmatch does not
            raise serializers.ValidationError(self.fields["skip"].error_messages["invalid"])
        return ids[:1000]


class PrelabelQuerySerializer(serializers.Serializer):
    image = serializers.UUIDField(help_text="A training image of the workspace.")


class PrelabelSerializer(serializers.Serializer):
    image_id = serializers.UUIDField()
    version = serializers.IntegerField(help_text="The deployed version that answered.")
    guess = GuessSerializer()


class ObjectChoiceSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="Detection label id of the task.")
    bound_box = serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4)


class PrelabelAcceptSerializer(serializers.Serializer):
    """Accept the model's guess (only ``image_id``) or store a correction (``labels`` for a
    recognition task, ``objects`` for a detection task)."""

    image_id = serializers.UUIDField()
    labels = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=1000,
        help_text="The task's label ids to store.",
    )
    objects = ObjectChoiceSerializer(many=True, required=False, help_text="Boxes to store (detection).")
    workspace = serializers.UUIDField(required=False)


class StoredObjectSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    detection_label = serializers.UUIDField()
    bound_box = serializers.ListField(child=serializers.FloatField())


class StoredLabelSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class PrelabelAcceptedSerializer(serializers.Serializer):
    image_id = serializers.UUIDField()
    labels = StoredLabelSerializer(many=True, required=False)
    objects = StoredObjectSerializer(many=True, required=False)


class PoolUploadSerializer(serializers.Serializer):
    """``POST task/{id}/pool/``: one image, exactly one of ``img_path``, ``base64``, ``url``."""

    # The one source, said in the schema too (apps/core/schema.py).
    schema_refinements = {"oneOf": [{"required": [source]} for source in ("img_path", "base64", "url")]}

    img_path = serializers.FileField(required=False, help_text="The image file (multipart).")
    base64 = serializers.CharField(required=False, help_text="Base64 image, bare or data-URL prefixed.")
    url = serializers.CharField(
        required=False, help_text="http(s) URL of a public image; the server fetches it."
    )
    test_image = serializers.BooleanField(required=False, default=False)
    workspace = serializers.UUIDField(required=False)
