"""Fixtures of the training tests."""

from __future__ import annotations

import pytest

from tests.factories import FAST_TRAINING


@pytest.fixture
def fast_training(settings, tmp_path):
    for key, value in FAST_TRAINING.items():
        setattr(settings, key, value)
    settings.VF_MODEL_CACHE_DIR = tmp_path / "model-cache"
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # a training sets it process-wide; later tests get theirs back
