"""The suggestions' tiny colour model (red, green, blue) and its tasks: the descriptors here are
that real model's, computed from real stored images."""

from __future__ import annotations

import pytest

from apps.similarity import cache
from tests.suggestions.conftest import _model_dirs, colour_model, colour_task  # noqa: F401


@pytest.fixture(autouse=True)
def _fresh_indexes():
    cache.clear()
    yield
    cache.clear()
