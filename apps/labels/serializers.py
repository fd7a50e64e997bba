from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Label


# Tasks and labels both have a ``type`` enum: name the component so the schema needs no override.
@extend_schema_field({"type": "string", "enum": Label.Type.values}, component_name="LabelType")
class LabelTypeField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=Label.Type.choices, **kwargs)


class LabelSerializer(serializers.ModelSerializer):
    """A label as the API shows it; the counts are annotations from the selector."""

    type = LabelTypeField(read_only=True)
    images_count = serializers.IntegerField(read_only=True)
    tasks_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Label
        fields = [
            "id",
            "name",
            "type",
            "description",
            "output_name",
            "images_count",
            "tasks_count",
            "negative_for_task",
            "workspace",
            "created",
        ]
        read_only_fields = fields


class LabelInputSerializer(serializers.Serializer):
    """Body of ``POST label/`` and ``PUT label/{id}``; null texts (the client sends them) mean empty."""

    name = serializers.CharField(max_length=255)
    type = LabelTypeField(default=Label.Type.CATEGORY)
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="")
    output_name = serializers.CharField(
        max_length=255, required=False, allow_blank=True, allow_null=True, default=""
    )
    workspace = serializers.UUIDField(
        required=False, write_only=True, help_text="Workspace to act on (else the caller's default)."
    )


class LabelUpdateSerializer(LabelInputSerializer):
    """Body of ``PUT``/``PATCH label/{id}``: a type left out stays as it is."""

    type = LabelTypeField(required=False)


class LabelBriefSerializer(serializers.ModelSerializer):
    """A label inside a task: ``{id, name, type}``."""

    type = LabelTypeField(read_only=True)

    class Meta:
        model = Label
        fields = ["id", "name", "type"]
        read_only_fields = fields


class LabelIdSerializer(serializers.Serializer):
    """Body of the add-label / remove-label verbs (JSON or a ``-F label_id=...`` form)."""

    label_id = serializers.UUIDField()
    workspace = serializers.UUIDField(
        required=False, write_only=True, help_text="Workspace to act on (else the caller's default)."
    )
