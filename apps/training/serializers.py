"""Serializers of the model (version) endpoints and the train action. Field names per API.md."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import ModelVersion


class ModelVersionSerializer(serializers.ModelSerializer):
    task = serializers.UUIDField(source="task_id", read_only=True)
    task_name = serializers.CharField(source="task.name", read_only=True)
    is_production = serializers.SerializerMethodField()
    metrics = serializers.JSONField(
        read_only=True,
        help_text="accuracy, precision, recall, f1 (macro), per_label, confusion_matrix, "
        "number_of_training_images, number_of_testing_images, training_time, pretrained; "
        "regression: mae, rmse, r2; a FAILED version: error.",
    )
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "task",
            "task_name",
            "version",
            "train_status",
            "created",
            "started",
            "finished",
            "progress",
            "accuracy",
            "metrics",
            "is_production",
            "warnings",
            "epoch",
            "loss",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.BooleanField())
    def get_is_production(self, obj: ModelVersion) -> bool:
        # Annotated by the list selector; computed for a version loaded on its own.
        annotated = getattr(obj, "is_production", None)
        if annotated is not None:
            return bool(annotated)
        return obj.train_status == ModelVersion.Status.TRAINED and obj.task.production_version == obj.version


class EvaluationLabelSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    prob = serializers.FloatField(required=False, allow_null=True, help_text="classification")
    value = serializers.FloatField(required=False, allow_null=True, help_text="regression")


class EvaluationRecordSerializer(serializers.Serializer):
    image_id = serializers.UUIDField()
    true_labels = EvaluationLabelSerializer(many=True)
    predicted_labels = EvaluationLabelSerializer(many=True, help_text="with their probability (or value)")
    labels = EvaluationLabelSerializer(many=True, required=False, help_text="every label, by probability")
    correct = serializers.BooleanField(allow_null=True, help_text="null for regression")
    error = serializers.FloatField(
        required=False, allow_null=True, help_text="regression: |predicted - true|"
    )


class EvaluationSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="the model version")
    task = serializers.UUIDField()
    version = serializers.IntegerField()
    train_status = serializers.CharField()
    count = serializers.IntegerField(help_text="number of test images")
    records = EvaluationRecordSerializer(many=True, help_text="test images, wrong predictions first")
