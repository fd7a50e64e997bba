"""Ids that arrive in paths, query strings and bodies."""

from __future__ import annotations

import re
import uuid

UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# Ids in one query parameter, comma-separated (spaces around the commas allowed): the schema's
# pattern for ``labels``, ``not_labels``, ``detection_labels``, ``skip``, and what the server reads.
UUID_LIST_PATTERN = rf"^ *{UUID_PATTERN} *(, *{UUID_PATTERN} *)*$"
_UUID_LIST = re.compile(UUID_LIST_PATTERN)
# A workspace as a caller names it: its id, or the Ximilar client's name for the caller's default
# workspace (its DEFAULT_WORKSPACE, "Default"; any case).
WORKSPACE_PATTERN = rf"^({UUID_PATTERN}|[Dd][Ee][Ff][Aa][Uu][Ll][Tt])$"


def parse_uuid(value) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is not one (callers answer 404 or 400, never 500)."""
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def parse_uuid_list(value: str) -> list[uuid.UUID] | None:
    """The ids of a comma-separated list (``UUID_LIST_PATTERN``), or None when it is not one."""
    if not isinstance(value, str) or not _UUID_LIST.fullmatch(value):
        return None
    return [uuid.UUID(part.strip()) for part in value.split(",")]
