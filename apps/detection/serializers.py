"""Shapes of the detection API, as ``ximilar-client``'s DetectionClient reads and sends them."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.fields import MetaDataField
from apps.core.ids import parse_uuid
from apps.images.models import TrainingImage
from apps.images.serializers import SignedImagePathsMixin
from apps.tasks.models import Task
from apps.tasks.serializers import MAX_TRAIN_TIME_BUDGET, MIN_TRAIN_TIME_BUDGET, TaskSerializer

from .models import DetectionLabel, DetectionObject, ObjectLabel

MSG_ID = "Give an id (or an object with its id)."


class DetectionLabelBriefSerializer(serializers.ModelSerializer):
    output_name = serializers.CharField(source="answer_name", read_only=True)

    class Meta:
        model = DetectionLabel
        fields = ["id", "name", "color", "output_name"]
        read_only_fields = fields


# A recognition task's fields that a detection task does not have (the detector's are settings).
RECOGNITION_ONLY_FIELDS = ("architecture", "input_size", "final_refit")


class DetectionTaskSerializer(TaskSerializer):
    """A detection task; ``labels`` are its detection labels."""

    type = serializers.ChoiceField(choices=Task.Type.choices, read_only=True)
    labels = DetectionLabelBriefSerializer(source="detection_labels", many=True, read_only=True)

    class Meta(TaskSerializer.Meta):
        fields = [name for name in TaskSerializer.Meta.fields if name not in RECOGNITION_ONLY_FIELDS]
        read_only_fields = fields


class DetectionTaskInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="")
    train_time_budget = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=MIN_TRAIN_TIME_BUDGET,
        max_value=MAX_TRAIN_TIME_BUDGET,
        help_text="Seconds a training may take; null = the service default.",
    )
    workspace = serializers.UUIDField(required=False, write_only=True)


class DetectionTaskUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, required=False)
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    keep_deployed_version = serializers.BooleanField(required=False)
    train_time_budget = serializers.IntegerField(
        required=False, allow_null=True, min_value=MIN_TRAIN_TIME_BUDGET, max_value=MAX_TRAIN_TIME_BUDGET
    )
    production_version = serializers.IntegerField(required=False, min_value=1)
    workspace = serializers.UUIDField(required=False, write_only=True)


class RecognitionTaskBriefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class DetectionLabelSerializer(serializers.ModelSerializer):
    """``output_name`` defaults to ``name``; ``recognition_tasks`` are the linked recognition tasks."""

    output_name = serializers.CharField(source="answer_name", read_only=True)
    recognition_tasks = RecognitionTaskBriefSerializer(many=True, read_only=True)

    class Meta:
        model = DetectionLabel
        fields = [
            "id",
            "name",
            "description",
            "color",
            "output_name",
            "workspace",
            "recognition_tasks",
            "created",
        ]
        read_only_fields = fields


class DetectionLabelInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="")
    color = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=32)
    output_name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=255)
    workspace = serializers.UUIDField(required=False, write_only=True)


class DetectionLabelUpdateSerializer(DetectionLabelInputSerializer):
    name = serializers.CharField(max_length=255, required=False)
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True)


class RecognitionTaskIdSerializer(serializers.Serializer):
    task_id = serializers.UUIDField()


class DetectionLabelIdSerializer(serializers.Serializer):
    label_id = serializers.UUIDField()


class NegativeImageIdSerializer(serializers.Serializer):
    image_id = serializers.UUIDField()


class ObjectLabelValueSerializer(serializers.Serializer):
    label_id = serializers.UUIDField()
    value = serializers.FloatField(required=False, allow_null=True, default=None)


class ObjectImageSerializer(SignedImagePathsMixin, serializers.ModelSerializer):
    img_path = serializers.SerializerMethodField()
    thumb_img_path = serializers.SerializerMethodField()

    class Meta:
        model = TrainingImage
        fields = ["id", "img_path", "thumb_img_path", "img_width", "img_height"]
        read_only_fields = fields


class ObjectLabelSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="label.id", read_only=True)
    name = serializers.CharField(source="label.name", read_only=True)
    value = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = ObjectLabel
        fields = ["id", "name", "value"]


class DetectionObjectSerializer(serializers.ModelSerializer):
    detection_label = DetectionLabelBriefSerializer(read_only=True)
    image = ObjectImageSerializer(read_only=True)
    data = serializers.ListField(
        child=serializers.FloatField(),
        read_only=True,
        help_text="[xmin, ymin, xmax, ymax] in pixels of the stored image",
    )
    recognition_labels = ObjectLabelSerializer(source="object_labels", many=True, read_only=True)

    class Meta:
        model = DetectionObject
        fields = [
            "id",
            "workspace",
            "detection_label",
            "image",
            "data",
            "meta_data",
            "recognition_labels",
            "created",
        ]
        read_only_fields = fields

    def to_representation(self, instance):
        answer = super().to_representation(instance)
        answer["data"] = instance.data  # ints stay ints (the client crops with them)
        return answer


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "format": "uuid"},
            {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string", "format": "uuid"}},
            },
        ]
    }
)
class IdRefField(serializers.Field):
    """An id, or the nested object an answer carried (the client's PUT echoes the image it got)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            data = data.get("id")
        uid = parse_uuid(data)
        if uid is None:
            raise serializers.ValidationError(MSG_ID)
        return uid


@extend_schema_field({"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4})
class BoxField(serializers.JSONField):
    """``[xmin, ymin, xmax, ymax]``; checked against the image by the service."""


class DetectionObjectInputSerializer(serializers.Serializer):
    detection_label = IdRefField(help_text="The detection label's id.")
    image = IdRefField(help_text="The training image's id (or an object with its id).")
    data = BoxField()
    meta_data = MetaDataField(required=False, allow_null=True)


class DetectionObjectUpdateSerializer(serializers.Serializer):
    detection_label = IdRefField(required=False)
    image = IdRefField(required=False)
    data = BoxField(required=False, allow_null=True)
    meta_data = MetaDataField(required=False, allow_null=True)


class DetectionZipImportSerializer(serializers.Serializer):
    """``POST detection/v2/task/{id}/import-zip/``: images with COCO JSON or Pascal VOC XML boxes."""

    zip = serializers.FileField(help_text="Zip of images and COCO .json / Pascal VOC .xml annotation files.")
    workspace = serializers.UUIDField(required=False, write_only=True)


class ImportSkippedSerializer(serializers.Serializer):
    file = serializers.CharField()
    reason = serializers.CharField()
    label = serializers.CharField(required=False)
    box = serializers.ListField(child=serializers.FloatField(), required=False)


class DetectionImportReportSerializer(serializers.Serializer):
    images = serializers.IntegerField(help_text="Images stored")
    objects = serializers.IntegerField(help_text="Boxes stored")
    negative_images = serializers.IntegerField(
        help_text="Images without boxes, added as the task's negatives"
    )
    labels_created = serializers.ListField(child=serializers.CharField())
    skipped = ImportSkippedSerializer(many=True, help_text="What was not imported, and why")
