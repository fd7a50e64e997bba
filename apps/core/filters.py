"""django-filter's DRF backend, skipped when the request names no filter.

Building a ``FilterSet`` deep-copies its filters, builds a Django form class and a bound form and
cleans it, on every list call and every ``get_object()``: on an unfiltered ``GET task/`` that
was about a seventh of the request's CPU time. With no query parameter other than paging, format
and the workspace there is nothing to filter: every filter of the project leaves the queryset as
it is when its value is empty, so the answer is the same without the form.
"""

from __future__ import annotations

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

# Query parameters that never reach a FilterSet: paging, the renderer, and the workspace the
# tenancy base resolves.
NOT_FILTERS = frozenset({"page", "page_size", "cursor", "format", "workspace"})

MSG_EMPTY_FILTER = "Give a value, or leave the parameter out."
MSG_BAD_BOOLEAN = "Give true or false."
BOOLEANS = frozenset({"true", "false"})  # any case: the Ximilar client sends Python's True / False


class FilterBackend(DjangoFilterBackend):
    """``DjangoFilterBackend`` that returns the queryset untouched when no filter is asked for."""

    def filter_queryset(self, request, queryset, view):
        params = request.query_params
        if not params or (params.keys() <= NOT_FILTERS and not self._declares_any(view, params)):
            return queryset
        self._refuse_what_a_form_would_ignore(view, params)
        return super().filter_queryset(request, queryset, view)

    @staticmethod
    def _refuse_what_a_form_would_ignore(view, params) -> None:
        """400 for an empty value of a filter that is not free text, and for a boolean that is not
        true or false: django-filter's forms take both as "no filter" and list everything, where the
        schema (a UUID, a number, a boolean) says the request is wrong."""
        declared = getattr(getattr(view, "filterset_class", None), "base_filters", None) or {}
        errors = {}
        for name, values in params.lists():
            field = declared.get(name)
            if field is None:
                continue
            boolean = isinstance(field, django_filters.BooleanFilter)
            text = isinstance(field, django_filters.CharFilter)
            text = text and not getattr(field, "empty_is_invalid", False)  # free text, not ids
            if not text and any(not v.strip() for v in values):
                errors[name] = [MSG_EMPTY_FILTER]
            elif boolean and any(v.lower() not in BOOLEANS for v in values):
                errors[name] = [MSG_BAD_BOOLEAN]
        if errors:
            raise ValidationError(errors)

    @staticmethod
    def _declares_any(view, params) -> bool:
        """True if the view's FilterSet declares one of ``params`` as a filter of its own."""
        filterset_class = getattr(view, "filterset_class", None)
        declared = getattr(filterset_class, "base_filters", None) or {}
        return any(name in declared for name in params) or bool(getattr(view, "filterset_fields", None))
