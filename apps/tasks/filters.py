from __future__ import annotations

import django_filters

from apps.labels.filters import strip_quotes

from .models import RECOGNITION_TYPES, Task


class TaskFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(method="filter_search", help_text="Substring of the task name.")
    type = django_filters.ChoiceFilter(choices=[(t.value, t.label) for t in RECOGNITION_TYPES])

    class Meta:
        model = Task
        fields = ["search", "type"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(name__icontains=strip_quotes(value))
