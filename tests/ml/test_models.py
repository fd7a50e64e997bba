"""Every allowed architecture builds, the split forward (features, logits) equals model(x), and a
CPU forward takes large images a few at a time."""

from __future__ import annotations

import pytest
import torch

from ml.config import ALLOWED_ARCHITECTURES, TrainConfig
from ml.models import build_model, features_and_logits
from ml.runtime import forward_batch_size


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


def test_a_cpu_forward_takes_large_images_a_few_at_a_time_and_a_gpu_all_at_once():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert forward_batch_size(224, cpu, 10) == 6
    assert forward_batch_size(224, cpu, 4) == 4
    assert forward_batch_size(128, cpu, 64) == 18
    assert forward_batch_size(320, cpu, 10) == 2
    assert forward_batch_size(2000, cpu, 10) == 1
    assert forward_batch_size(224, gpu, 10) == 10
