"""A probe on middle layers (ml/recognition/taps.py): stage outputs pooled on a grid, then one linear layer.

It must pool exactly as ``adaptive_avg_pool2d`` does, reload from model.json alone, win where the
last layer's global pool throws away what tells the classes apart (where a mark sits), and serve
as one forward pass in eager, TorchScript and ONNX, alone or as a blend's member.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from ml import weights
from ml.data import normalize
from ml.models import create_empty_model
from ml.recognition import blend, taps
from ml.recognition.predictor import model_from_meta
from ml.recognition.recipe import fit
from tests.ml.recognition.test_blend import _served, _test_images
from tests.ml.recognition.test_recipe import _config, _glyphs

SIDE = [{"id": "l", "name": "left"}, {"id": "r", "name": "right"}]
LITE0_TAPS = (80 + 112 + 192) * 4  # stages 3, 4 and 5 of lite0, each on a 2 x 2 grid


def _mark(right: bool, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """A dark square in the left or the right half of a light, noisy picture: the class is where
    the mark sits, which a global pool of the last layer mostly averages away."""
    pixels = 200 + rng.normal(0, 12, (size, size, 3))
    side = int(rng.integers(8, 13))
    top = int(rng.integers(0, size - side))
    left = (
        int(rng.integers(size // 2 + 2, size - side)) if right else int(rng.integers(0, size // 2 - side - 2))
    )
    pixels[top : top + side, left : left + side] = 40 + rng.normal(0, 12, (side, side, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("shape", [(7, 7), (14, 14), (28, 28), (5, 9)])
def test_the_grid_pool_is_adaptive_average_pooling(shape):
    x = torch.randn(2, 3, *shape)
    torch.testing.assert_close(taps.grid_pool(x, 2), F.adaptive_avg_pool2d(x, 2).flatten(1))
    torch.testing.assert_close(taps.grid_pool(x, 3), F.adaptive_avg_pool2d(x, 3).flatten(1))


def test_taps_stop_after_the_last_tapped_stage_and_reload_from_their_spec():
    torch.manual_seed(0)
    net = create_empty_model("tf_efficientnet_lite0", 3).eval()
    stages = taps.default_stages(net)
    assert stages == [3, 4, 5]
    x = torch.randn(2, 3, 96, 96)

    both = taps.Taps(net, stages, 2, 1, final=True).eval()
    with torch.no_grad():
        feats = both.tapped(x)
        last = net.forward_head(net.forward_features(x), pre_logits=True)
    assert feats.shape == (2, 1280 + LITE0_TAPS)
    torch.testing.assert_close(feats[:, :1280], last)  # the same pass gives the last layer's features

    served = taps.Taps(net, stages, 2, 3).eval()
    assert len(served.blocks) == 6  # stage 6 and the head convolution never run
    meta = {"taps": taps.spec(served, "tf_efficientnet_lite0"), "num_outputs": 3, "architecture": "x"}
    again = model_from_meta(meta)
    again.load_state_dict(served.state_dict(), strict=True)
    again.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), served(x))
        torch.testing.assert_close(served.features_and_logits(x)[0], feats[:, 1280:])
    assert taps.default_stages(create_empty_model("resnet10t", 2)) is None


def test_the_middle_layer_probe_wins_where_the_mark_sits_and_is_served_as_one_forward_pass(tmp_path):
    rng = np.random.default_rng(0)
    items = [(_mark(k % 2 == 1, rng), k % 2) for k in range(60)]
    test_mask = [k % 5 == 0 for k in range(60)]
    result = fit(items, test_mask, SIDE, "multi_class", _config(candidates=("probe", "probe_mid")), tmp_path)

    m = result.metrics
    rows = {c["name"]: c for c in m["candidates"]}
    assert list(rows) == ["probe:tf_efficientnet_lite0@224", "probe:tf_efficientnet_lite0@224:mid-layers"]
    last, mid = rows.values()
    assert mid["validation_score"] > last["validation_score"]
    assert m["selected"] == mid["name"] and m["accuracy"] >= 0.9
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["taps"] == {"architecture": "tf_efficientnet_lite0", "stages": [3, 4, 5], "grid": 2}

    eager, traced, onnx_scores, _ = _served(tmp_path, _test_images(items, test_mask))
    probs = [o["probs"] for o in eager]
    np.testing.assert_allclose(probs, [p["probs"] for p in result.predictions], atol=1e-4)
    np.testing.assert_allclose([o["probs"] for o in traced], probs, atol=1e-4)
    np.testing.assert_allclose(onnx_scores, probs, atol=1e-4)
    assert len(eager[0]["descriptor"]) == LITE0_TAPS


def test_a_blend_with_a_middle_layer_member_reloads_from_model_json_and_serves_alike(tmp_path):
    torch.manual_seed(0)
    mid = taps.Taps(create_empty_model("tf_efficientnet_lite0", 1), [3, 4, 5], 2, 1).eval()
    small = create_empty_model("resnet10t", 1).eval()
    means, stds = [[0.5] * 3, [0.485, 0.456, 0.406]], [[0.5] * 3, [0.229, 0.224, 0.225]]
    module = blend.Blend(
        [mid, small], task_type="regression", weights=[0.6, 0.4], pools=[1, 7], means=means, stds=stds
    ).eval()
    member_taps = [taps.spec(mid, "tf_efficientnet_lite0"), None]
    spec = blend.spec(module, ["tf_efficientnet_lite0", "resnet10t"], [224, 32], means, stds, member_taps)
    assert spec["members"][0]["taps"]["stages"] == [3, 4, 5] and "taps" not in spec["members"][1]
    meta = {
        "architecture": blend.BLEND_ARCHITECTURE, "blend": spec, "input_size": 224, "num_outputs": 1,
        "mean": means[0], "std": stds[0], "interpolation": "bicubic", "task_type": "regression",
        "labels": [], "thresholds": None, "target_mean": 0.0, "target_std": 1.0,
    }  # fmt: skip
    weights.save_version(tmp_path, module, meta)

    items, test_mask = _glyphs(n=10)
    images = _test_images(items, test_mask)
    eager, traced, onnx_scores, predictor = _served(tmp_path, images)
    batch = torch.stack([predictor.preprocess(image) for image in images])
    with torch.no_grad():
        direct = module(normalize(batch, means[0], stds[0]))[:, 0].numpy()
    values = [o["value"] for o in eager]
    np.testing.assert_allclose(values, direct, atol=1e-4)
    np.testing.assert_allclose([o["value"] for o in traced], values, atol=1e-4)
    np.testing.assert_allclose(onnx_scores, values, atol=1e-4)
    assert len(eager[0]["descriptor"]) == LITE0_TAPS + 512
