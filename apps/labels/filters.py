from __future__ import annotations

import django_filters

from .models import Label


def strip_quotes(value: str) -> str:
    """The vendor docs show ``?search="query"``; quotes around the whole query are not part of it."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return value


class LabelFilter(django_filters.FilterSet):
    task = django_filters.UUIDFilter(field_name="tasks__id", help_text="Only labels attached to this task.")
    search = django_filters.CharFilter(method="filter_search", help_text="Substring of the label name.")
    type = django_filters.ChoiceFilter(choices=Label.Type.choices)

    class Meta:
        model = Label
        fields = ["task", "search", "type"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(name__icontains=strip_quotes(value))
