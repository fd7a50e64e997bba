"""Ids that arrive in paths, query strings and bodies."""

from __future__ import annotations

import uuid


def parse_uuid(value) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is not one (callers answer 404 or 400, never 500)."""
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None
