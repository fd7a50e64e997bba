"""Fixtures for the ML tests: drawn data sets and small configs that train in seconds on 2 cores."""

from __future__ import annotations

import numpy as np
import pytest

from ml.config import TrainConfig
from tests.pictures import SHAPE_COLOURS as COLOURS
from tests.pictures import coloured_shape


def colour_data():
    """30 images a class for red / green / blue; every 5th image on the test side."""
    rng = np.random.default_rng(0)
    labels = [{"id": f"id-{name}", "name": name} for name in COLOURS]
    items = [(coloured_shape(rgb, rng), i) for _ in range(30) for i, rgb in enumerate(COLOURS.values())]
    test_mask = [k % 5 == 0 for k in range(len(items))]
    return items, test_mask, labels


def scratch_train_config() -> TrainConfig:
    """A tiny ResNet from scratch at 32 px: a fit takes a few seconds.

    One thread: tests share the machine with other test processes, and two OpenMP threads
    on oversubscribed cores measured 6x slower than one.
    """
    return TrainConfig(
        architecture="resnet10t",
        pretrained="none",
        input_size=32,
        epochs=8,
        batch_size=16,
        seed=0,
        num_threads=1,
    )


@pytest.fixture
def colour_dataset():
    """``colour_data()``: 30 images a class for red / green / blue, every 5th on the test side."""
    return colour_data()


@pytest.fixture
def scratch_config():
    """``scratch_train_config()``: a tiny ResNet from scratch at 32 px, one thread."""
    return scratch_train_config()
