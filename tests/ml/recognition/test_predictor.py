"""The predictor serves a saved version: large images go through the model a few at a time with
the same answers as one pass."""

from __future__ import annotations

import numpy as np
import torch

from ml import weights
from ml.config import TrainConfig
from ml.models import build_model
from ml.recognition import predictor
from ml.recognition.predictor import Predictor


def test_the_predictor_answers_a_batch_in_passes_as_in_one(tmp_path, monkeypatch):
    """Ten 224 px images go through the model in passes of six and four: the same probabilities
    and descriptors as one pass over the ten, and every pass no larger than the rule allows."""
    torch.manual_seed(0)
    model = build_model(TrainConfig(architecture="resnet10t", pretrained="none"), num_outputs=3).model.eval()
    meta = {
        "task_type": "multi_class", "architecture": "resnet10t", "num_outputs": 3, "input_size": 224,
        "labels": [{"id": str(i), "name": f"l{i}"} for i in range(3)], "mean": [0.5] * 3, "std": [0.5] * 3,
    }  # fmt: skip
    weights.save_version(tmp_path, model, meta)
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
