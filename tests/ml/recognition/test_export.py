"""ONNX export: the exported graph gives the predictor's outputs in onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ml.config import TrainConfig
from ml.recognition.export import export_onnx
from ml.recognition.predictor import Predictor
from ml.recognition.recipe import fit

ort = pytest.importorskip("onnxruntime")

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def _square(rgb, rng) -> Image.Image:
    jitter = rng.integers(-25, 25, size=3)
    colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(rgb, jitter, strict=True))
    return Image.new("RGB", (32, 32), colour)


@pytest.mark.parametrize("task_type", ["multi_class", "regression"])
def test_the_onnx_export_gives_the_same_outputs_as_the_predictor(tmp_path, task_type):
    rng = np.random.default_rng(0)
    if task_type == "multi_class":
        labels = [{"id": name, "name": name} for name in COLOURS]
        items = [(_square(rgb, rng), i) for i, rgb in enumerate(COLOURS.values()) for _ in range(8)]
    else:
        labels = [{"id": "brightness", "name": "brightness"}]
        levels = rng.uniform(0, 1, size=24)
        items = [(Image.new("L", (32, 32), int(v * 255)).convert("RGB"), float(v)) for v in levels]
    config = TrainConfig(architecture="resnet10t", pretrained="none", input_size=32, epochs=2, batch_size=8)
    fit(
        items=items,
        test_mask=[i % 4 == 0 for i in range(len(items))],
        labels=labels,
        task_type=task_type,
        config=config,
        out_dir=tmp_path,
    )

    onnx_path = export_onnx(tmp_path)
    predictor = Predictor.load(tmp_path, device="cpu")
    batch = torch.stack([predictor.preprocess(image) for image, _ in items[:5]])
    expected = predictor.predict_tensor(batch)

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (scores,) = session.run(["scores"], {"images": batch.numpy()})
    key = "value" if task_type == "regression" else "probs"
    np.testing.assert_allclose(scores, np.array([row[key] for row in expected]), atol=1e-4)
    assert scores.shape[0] == 5
