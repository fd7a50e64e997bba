from __future__ import annotations

import django_filters

from apps.labels.filters import strip_quotes

from .models import DetectionLabel, DetectionObject


class DetectionLabelFilter(django_filters.FilterSet):
    task = django_filters.UUIDFilter(
        field_name="tasks__id", help_text="Labels attached to this detection task."
    )
    search = django_filters.CharFilter(method="filter_search", help_text="Substring of the label name.")

    class Meta:
        model = DetectionLabel
        fields = ["task", "search"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(name__icontains=strip_quotes(value))


class DetectionObjectFilter(django_filters.FilterSet):
    image = django_filters.UUIDFilter(field_name="image_id", help_text="Objects on this training image.")
    detection_label = django_filters.UUIDFilter(field_name="detection_label_id")
    object_detection_label = django_filters.UUIDFilter(
        field_name="detection_label_id", help_text="Alias of `detection_label` (the client sends it)."
    )
    object_labels = django_filters.UUIDFilter(
        field_name="object_labels__label_id", help_text="Objects carrying this recognition label."
    )

    class Meta:
        model = DetectionObject
        fields = ["image", "detection_label", "object_detection_label", "object_labels"]
