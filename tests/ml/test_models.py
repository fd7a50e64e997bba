"""Every allowed architecture builds, and the predictor's split forward equals model(x)."""

from __future__ import annotations

import pytest
import torch

from ml.config import ALLOWED_ARCHITECTURES, TrainConfig
from ml.models import build_model, features_and_logits


@pytest.mark.parametrize("architecture", ALLOWED_ARCHITECTURES)
def test_features_and_logits_match_the_plain_forward(architecture):
    torch.manual_seed(0)
    model = build_model(TrainConfig(architecture=architecture, pretrained="none"), num_outputs=3).model
    model = model.eval().to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        feats, logits = features_and_logits(model, x)
        expected = model(x)
    assert logits.shape == (2, 3) and feats.ndim == 2 and feats.shape[0] == 2
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
