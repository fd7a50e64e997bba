"""The RBF-kernel head of a middle-layer probe (ml/recognition/kernel.py).

It must compute exactly scikit-learn's Nyström features, win where the classes are not linearly
separable in the probe's features (a mark in exactly one half of the picture), reload from
model.json alone (also as a blend's member), and serve as one forward pass in eager, TorchScript and ONNX.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from ml.models import create_empty_model
from ml.recognition import blend, kernel, taps
from ml.recognition.predictor import model_from_meta
from ml.recognition.recipe import fit
from tests.ml.recognition.test_blend import _served, _test_images
from tests.ml.recognition.test_recipe import _config
from tests.ml.recognition.test_taps import LITE0_TAPS

PARITY = [{"id": "same", "name": "none or both"}, {"id": "one", "name": "exactly one"}]


def test_the_head_computes_scikit_learns_nystroem_features_in_torch():
    rng = np.random.default_rng(0)
    train = rng.normal(2.0, 3.0, (80, 12))
    unseen = rng.normal(2.0, 3.0, (7, 12))
    mapping = kernel.KernelMap(train, seed=0, landmarks=50)
    assert mapping.landmarks == 50
    head = kernel.RBFHead(12, mapping.landmarks, 3)
    mapping.load_into(head)
    with torch.no_grad():
        got = head.kernel_features(torch.as_tensor(unseen, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, mapping.transform(unseen), atol=1e-4)
    # Fewer training rows than landmarks: every row is one.
    assert kernel.KernelMap(train[:20], landmarks=50).landmarks == 20
    # A feature constant on the training side does not throw unseen images away from every landmark.
    train[:, 3] = 5.0
    flat = kernel.KernelMap(train, landmarks=50)
    assert flat.scale[3] == 1.0 and np.abs(flat.transform(unseen)).sum(axis=1).min() > 0.1


def _marks(left: bool, right: bool, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """A light noisy picture with a dark square in the left half, the right half, both or neither."""
    pixels = 200 + rng.normal(0, 12, (size, size, 3))
    for on, low, high in ((left, 0, size // 2 - 12), (right, size // 2 + 2, size - 10)):
        if on:
            top, start = int(rng.integers(0, size - 10)), int(rng.integers(low, high))
            pixels[top : top + 10, start : start + 10] = 40 + rng.normal(0, 12, (10, 10, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def test_the_kernel_head_wins_where_the_classes_are_not_linearly_separable_and_serves_as_one_pass(tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for k in range(96):
        left, right = bool(k % 2), bool((k // 2) % 2)  # the four cases in turn
        items.append((_marks(left, right, rng), int(left != right)))
    test_mask = [k % 6 == 0 for k in range(96)]
    config = _config(candidates=("probe_mid", "probe_kernel"))
    result = fit(items, test_mask, PARITY, "multi_class", config, tmp_path)

    m = result.metrics
    rows = {c["name"]: c for c in m["candidates"]}
    linear, curved = (
        "probe:tf_efficientnet_lite0@224:mid-layers",
        "probe:tf_efficientnet_lite0@224:mid-layers:rbf",
    )
    assert list(rows) == [linear, curved]
    assert rows[curved]["validation_score"] > rows[linear]["validation_score"]
    assert m["selected"] == curved and m["accuracy"] >= 0.85
    meta = json.loads((tmp_path / "model.json").read_text())
    landmarks = meta["taps"]["kernel"]
    assert landmarks == 64  # every image of the fit part (fewer than kernel.LANDMARKS)
    assert meta["taps"] == {
        "architecture": "tf_efficientnet_lite0",
        "stages": [3, 4, 5],
        "grid": 2,
        "kernel": 64,
    }

    eager, traced, onnx_scores, _ = _served(tmp_path, _test_images(items, test_mask))
    probs = [o["probs"] for o in eager]
    np.testing.assert_allclose(probs, [p["probs"] for p in result.predictions], atol=1e-4)
    np.testing.assert_allclose([o["probs"] for o in traced], probs, atol=1e-4)
    np.testing.assert_allclose(onnx_scores, probs, atol=1e-4)
    assert len(eager[0]["descriptor"]) == LITE0_TAPS  # the probe's features, as for the linear head


def test_a_blend_with_a_kernel_member_reloads_from_its_spec_and_answers_alike():
    torch.manual_seed(0)
    curved = taps.Taps(create_empty_model("tf_efficientnet_lite0", 2), [3, 4, 5], 2, 2, kernel=16).eval()
    rng = np.random.default_rng(0)
    mapping = kernel.KernelMap(rng.normal(0, 1, (40, LITE0_TAPS)), landmarks=16)
    mapping.load_into(curved.head)
    small = create_empty_model("resnet10t", 2).eval()
    means, stds = [[0.5] * 3, [0.485, 0.456, 0.406]], [[0.5] * 3, [0.229, 0.224, 0.225]]
    module = blend.Blend(
        [curved, small], task_type="multi_class", weights=[0.5, 0.5], pools=[1, 4], means=means, stds=stds
    ).eval()
    member_taps = [taps.spec(curved, "tf_efficientnet_lite0"), None]
    spec = blend.spec(module, ["tf_efficientnet_lite0", "resnet10t"], [128, 32], means, stds, member_taps)
    assert spec["members"][0]["taps"]["kernel"] == 16
    again = model_from_meta({"blend": spec, "num_outputs": 2, "task_type": "multi_class"})
    again.load_state_dict(module.state_dict(), strict=True)  # the kernel's arrays are in the weights
    x = torch.randn(3, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), module(x))
