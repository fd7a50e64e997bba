from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.labels.serializers import LabelBriefSerializer
from ml.config import ALLOWED_ARCHITECTURES, MIN_INPUT_SIZE

from .models import RECOGNITION_TYPES, Task

# TrainConfig.validate accepts up to 1024; the nets downsample by 32, so sizes are multiples of it.
MAX_TASK_INPUT_SIZE = 1024
MSG_INPUT_SIZE_MULTIPLE = "input_size must be a multiple of 32."
# A training gets at least 10 s and at most 6 hours (the worker's hard time limit).
MIN_TRAIN_TIME_BUDGET = 10
MAX_TRAIN_TIME_BUDGET = 6 * 3600


# Tasks and labels both have a ``type`` enum: name the component so the schema needs no override.
@extend_schema_field({"type": "string", "enum": list(RECOGNITION_TYPES)}, component_name="TaskType")
class TaskTypeField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=[(t.value, t.label) for t in RECOGNITION_TYPES], **kwargs)


class TaskSerializer(serializers.ModelSerializer):
    """A task as the API shows it; ``labels`` are the attached labels, ``{id, name, type}``."""

    type = TaskTypeField(read_only=True)
    labels = LabelBriefSerializer(many=True, read_only=True)

    class Meta:
        model = Task
        fields = [
            "id",
            "name",
            "type",
            "description",
            "production_version",
            "last_train_status",
            "workspace",
            "labels",
            "created",
            "keep_deployed_version",
            "architecture",
            "input_size",
            "train_time_budget",
            "final_refit",
        ]
        read_only_fields = fields


class TaskInputSerializer(serializers.Serializer):
    """Body of ``POST task/`` (JSON or a ``-F name=... -F type=...`` form)."""

    name = serializers.CharField(max_length=255)
    type = TaskTypeField(default=Task.Type.MULTI_CLASS)
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="")
    keep_deployed_version = serializers.BooleanField(
        required=False,
        default=False,
        help_text="When true, a newly trained version is not deployed automatically.",
    )
    architecture = serializers.ChoiceField(
        choices=ALLOWED_ARCHITECTURES,
        required=False,
        allow_blank=True,
        default="",
        help_text="timm model to train; blank = the service default.",
    )
    input_size = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=MIN_INPUT_SIZE,
        max_value=MAX_TASK_INPUT_SIZE,
        help_text="Square input side in pixels (multiple of 32); null = chosen from the images.",
    )
    train_time_budget = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=MIN_TRAIN_TIME_BUDGET,
        max_value=MAX_TRAIN_TIME_BUDGET,
        help_text="Seconds a training may take, queue excluded; null = the service default (120).",
    )
    final_refit = serializers.BooleanField(
        required=False,
        default=False,
        help_text=(
            "When true, each training ends with a refit of the chosen model on every labelled image, "
            "test images included, after the version was scored on its test side; the version's "
            "metrics record it (metrics.final_refit)."
        ),
    )
    workspace = serializers.UUIDField(
        required=False, write_only=True, help_text="Workspace to act on (else the caller's default)."
    )

    # validate_input_size's rule, said in the schema too (apps/core/schema.py).
    schema_refinements = {"properties": {"input_size": {"multipleOf": 32}}}

    def validate_input_size(self, value):
        if value is not None and value % 32:
            raise serializers.ValidationError(MSG_INPUT_SIZE_MULTIPLE)
        return value


class TaskUpdateSerializer(TaskInputSerializer):
    """Body of ``PUT``/``PATCH task/{id}``; ``production_version`` deploys that trained version."""

    type = TaskTypeField(required=False)
    production_version = serializers.IntegerField(
        required=False, min_value=1, help_text="Deploy this trained version (it must be TRAINED)."
    )
