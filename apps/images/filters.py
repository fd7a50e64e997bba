"""Filters of ``GET training-image/``, including the ones the Ximilar client sends.

``labels`` / ``label`` and ``not_labels`` take one id, a comma-separated list or repeated params.
``label_value_<label id>__gte`` / ``__lte`` (sent by the client's ``Label.get_training_images``
with a value) bound the regression value of that label.
"""

from __future__ import annotations

import re
import uuid

import django_filters
from django import forms
from django.db.models import Exists, OuterRef
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError

from apps.core.ids import UUID_LIST_PATTERN, parse_uuid_list

from .models import ImageLabel, TrainingImage
from .selectors import training_image_pool

MSG_BAD_IDS = "Give label ids (UUIDs), comma-separated or repeated."
MSG_BAD_NUMBER = "Give a number."
_VALUE_PARAM = re.compile(r"^label_value_(?P<label>[0-9a-fA-F-]{32,36})__(?P<op>gte|lte|gt|lt)$")


def _ids(values, name: str = "labels") -> list[uuid.UUID]:
    """The ids of every value (each one id or a comma-separated list of them); 400 for anything else,
    an empty value included: the schema's pattern (``UUID_LIST_PATTERN``) says the same."""
    if isinstance(values, str):
        values = [values]
    ids = []
    for value in values:
        parsed = parse_uuid_list(value)
        if parsed is None:
            raise ValidationError({name: [MSG_BAD_IDS]})
        ids.extend(parsed)
    return ids


def _with_label(label_ids):
    return Exists(ImageLabel.objects.filter(image=OuterRef("pk"), label_id__in=label_ids))


@extend_schema_field({"type": "string", "pattern": UUID_LIST_PATTERN})
class LabelIdsFilter(django_filters.CharFilter):
    """Comma-separated or repeated label ids; ``exclude`` keeps the images with none of them."""

    empty_is_invalid = True  # an empty value names no id: 400 (apps/core/filters.py), not "all"

    def filter(self, qs, value):
        request = getattr(self.parent, "request", None)
        raw = request.query_params.getlist(self.field_name) if request is not None else [value]
        if request is None and not value:
            return qs
        ids = _ids(raw, self.field_name)
        if not ids:  # the parameter is absent
            return qs
        condition = _with_label(ids)
        return qs.exclude(condition) if self.exclude else qs.filter(condition)


# A count column (PositiveIntegerField): a larger number is a 400, not a database error.
COUNT_MAX = 2_147_483_647


class CountField(forms.IntegerField):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=0, max_value=COUNT_MAX, **kwargs)


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": COUNT_MAX})
class CountFilter(django_filters.NumberFilter):
    """A whole number of times, as the schema says (NumberFilter would take ``0.5`` and find nothing,
    and pass ``10**20`` on to the database)."""

    field_class = CountField


class TrainingImageFilter(django_filters.FilterSet):
    labels = LabelIdsFilter(field_name="labels", help_text="Images carrying any of these label ids.")
    label = LabelIdsFilter(field_name="label", help_text="Alias of `labels` (Vize).")
    not_labels = LabelIdsFilter(
        field_name="not_labels", exclude=True, help_text="Images carrying none of these label ids."
    )
    test = django_filters.BooleanFilter(field_name="test_image", help_text="Test images only (or none).")
    real = django_filters.BooleanFilter(field_name="real")
    task = django_filters.UUIDFilter(method="filter_task", help_text="Images carrying a label of this task.")
    unlabelled = django_filters.BooleanFilter(
        method="filter_unlabelled", help_text="Images without any label."
    )
    pool = django_filters.UUIDFilter(
        method="filter_pool",
        help_text="The task's pool: images with none of its labels, uploaded to it or not labelled at all.",
    )
    detection_labels = LabelIdsFilter(
        method="filter_detection_labels",
        help_text="Images with an object of any of these detection label ids (apps/detection).",
    )
    verified = CountFilter(field_name="verify_count", help_text="Images verified this many times.")

    class Meta:
        model = TrainingImage
        fields: list[str] = []

    def filter_task(self, queryset, name, value):
        return queryset.filter(
            Exists(ImageLabel.objects.filter(image=OuterRef("pk"), label__tasks__id=value))
        )

    def filter_pool(self, queryset, name, value):
        return training_image_pool(queryset, task_id=value)

    def filter_detection_labels(self, queryset, name, value):
        # Through the reverse relation of apps/detection's objects: images stay below detection in
        # the layers, so no import of its models here.
        raw = self.request.query_params.getlist(name) if self.request is not None else [value]
        ids = _ids(raw, name)
        if not ids:
            return queryset
        return queryset.filter(detection_objects__detection_label_id__in=ids).distinct()

    def filter_unlabelled(self, queryset, name, value):
        condition = Exists(ImageLabel.objects.filter(image=OuterRef("pk")))
        return queryset.exclude(condition) if value else queryset.filter(condition)

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        for key, raw in self.data.items():
            match = _VALUE_PARAM.match(key)
            if not match:
                continue
            try:
                label_id = uuid.UUID(match["label"])
                number = float(raw)
            except ValueError:
                raise ValidationError({key: [MSG_BAD_NUMBER]}) from None
            lookup = {"image": OuterRef("pk"), "label_id": label_id, f"value__{match['op']}": number}
            queryset = queryset.filter(Exists(ImageLabel.objects.filter(**lookup)))
        return queryset
