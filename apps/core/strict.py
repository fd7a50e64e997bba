"""JSON bodies are held to the types the schema states: a string field takes a string.

DRF coerces on the way in: a ``CharField`` turns the JSON number ``0`` into ``"0"`` and a
``UUIDField`` reads an integer as a UUID, so ``{"name": 0}`` creates a workspace although the schema
says ``name`` is a string. A client generated from the schema would be told one thing and the
server would do another. Forms and query strings carry nothing but strings, so the rule applies to
JSON bodies only (the serializer's data is not a ``QueryDict``); the Ximilar client sends its names
and ids as strings.

Installed once, from ``CoreConfig.ready()``.
"""

from __future__ import annotations

import uuid

from django.http import QueryDict
from rest_framework import serializers

_installed = False


def _from_json(field: serializers.Field) -> bool:
    root = field.root
    data = getattr(root, "initial_data", None)
    return data is not None and not isinstance(data, QueryDict)


def _strict(field_class, accepts):
    original = field_class.to_internal_value

    def to_internal_value(self, data):
        if not accepts(data) and _from_json(self):
            self.fail("invalid")
        return original(self, data)

    field_class.to_internal_value = to_internal_value


def install() -> None:
    """Make ``CharField`` (and its kinds: email, regex, URL, slug) take only strings, and
    ``UUIDField`` only strings or UUIDs, in JSON bodies."""
    global _installed
    if _installed:
        return
    _installed = True
    _strict(serializers.CharField, lambda data: isinstance(data, str))
    _strict(serializers.UUIDField, lambda data: isinstance(data, str | uuid.UUID))
