"""Every allowed architecture builds, the predictor's split forward equals model(x), and large
images go through a CPU forward a few at a time with the same answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.config import ALLOWED_ARCHITECTURES, TrainConfig
from ml.models import build_model, features_and_logits, forward_batch_size


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


def test_the_predictor_answers_a_batch_in_passes_as_in_one(tmp_path, monkeypatch):
    """Ten 224 px images go through the model in passes of six and four: the same probabilities
    and descriptors as one pass over the ten, and every pass no larger than the rule allows."""
    from ml import artifacts, predictor
    from ml.predictor import Predictor

    torch.manual_seed(0)
    model = build_model(TrainConfig(architecture="resnet10t", pretrained="none"), num_outputs=3).model.eval()
    meta = {
        "task_type": "multi_class", "architecture": "resnet10t", "num_outputs": 3, "input_size": 224,
        "labels": [{"id": str(i), "name": f"l{i}"} for i in range(3)], "mean": [0.5] * 3, "std": [0.5] * 3,
    }  # fmt: skip
    artifacts.save_version(tmp_path, model, meta)
    loaded = Predictor.load(tmp_path, device="cpu", mode="jit")
    batch = torch.randint(0, 255, (10, 3, 224, 224), dtype=torch.uint8)
    sizes = []
    forward = loaded.forward_fn
    loaded.forward_fn = lambda x: sizes.append(len(x)) or forward(x)
    in_passes = loaded.predict_tensor(batch, descriptor=True)
    assert sizes == [6, 4]
    monkeypatch.setattr(predictor, "forward_batch_size", lambda side, device, at_most: at_most)
    in_one = loaded.predict_tensor(batch, descriptor=True)
    assert sizes == [6, 4, 10]
    for a, b in zip(in_passes, in_one, strict=True):
        np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-5)
        np.testing.assert_allclose(a["descriptor"], b["descriptor"], atol=1e-5)
