"""Blends: a linear probe and a net from scratch mixed, served as one module and one forward pass.

The net from scratch learns from the probe's cache average-pooled to its own size, so at serving
it sees exactly what it trained on; a blend (or that net alone) reloads from its directory, gives
the answers ``fit`` measured, and traces and exports to ONNX like any single net.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch

from ml.data import build_cache, normalize
from ml.recognition import blend
from ml.recognition.export import export_onnx
from ml.recognition.predictor import Predictor
from ml.recognition.recipe import fit
from tests.ml.recognition.test_recipe import LABELS, _config, _glyphs

ALL = ("probe", "scratch", "blend")


def _test_images(items, test_mask):
    return [image for (image, _), test in zip(items, test_mask, strict=True) if test]


def _served(directory, images):
    """(eager outputs, traced outputs, ONNX scores, the predictor) for ``images``."""
    onnxruntime = pytest.importorskip("onnxruntime")
    predictor = Predictor.load(directory, device="cpu")
    eager = predictor.predict(images, descriptor=True)
    traced = Predictor.load(directory, device="cpu", mode="jit").predict(images)
    export_onnx(directory, directory / "model.onnx")
    session = onnxruntime.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = torch.stack([predictor.preprocess(image) for image in images]).numpy()
    return eager, traced, session.run(None, {"images": batch})[0], predictor


@pytest.mark.parametrize("task_type", ["multi_class", "multi_label", "regression"])
def test_mixed_logits_give_the_weighted_mean_of_the_members_activations(task_type):
    torch.manual_seed(0)
    a, b = torch.randn(5, 3) * 3, torch.randn(5, 3) * 3
    mixed = blend.mix_logits(task_type, [a, b], [0.25, 0.75])
    if task_type == "multi_class":
        expected, got = 0.25 * a.softmax(1) + 0.75 * b.softmax(1), mixed.softmax(1)
    elif task_type == "multi_label":
        expected, got = 0.25 * a.sigmoid() + 0.75 * b.sigmoid(), mixed.sigmoid()
    else:
        expected, got = 0.25 * a + 0.75 * b, mixed
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(
        blend.mix_outputs([expected.numpy(), expected.numpy()], [0.3, 0.7]), expected.numpy(), atol=1e-6
    )


def test_a_member_sees_the_input_pooled_and_normalised_with_its_own_statistics():
    items, _ = _glyphs(n=6)
    cache = build_cache([image for image, _ in items], 224, "bicubic")[0]
    big_mean, big_std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    small_mean, small_std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    nets = [timm.create_model("resnet10t", num_classes=2) for _ in range(2)]
    module = blend.Blend(
        nets, task_type="multi_class", weights=[1, 1], pools=[1, 7],
        means=[big_mean, small_mean], stds=[big_std, small_std],
    )  # fmt: skip
    seen = module.member_input(1, normalize(cache, big_mean, big_std))
    pooled = torch.nn.functional.avg_pool2d(cache.float(), 7).round().to(torch.uint8)  # what it trains on
    expected = normalize(pooled, small_mean, small_std)
    assert seen.shape == (6, 3, 32, 32)
    # Training rounds the pooled cache to whole grey levels: at most half a level apart.
    assert float((seen - expected).abs().max()) <= 0.5 / 255 / min(small_std) + 1e-5
    with pytest.raises(ValueError):
        blend.Blend(
            nets, task_type="multi_class", weights=[1], pools=[1, 7], means=[big_mean], stds=[big_std]
        )


def test_a_blend_wins_where_probe_and_net_err_apart_and_is_served_as_one_forward_pass(tmp_path):
    # Glyph regression (the value follows the mirroring): neither the frozen features nor a short
    # run from scratch gets it all; their mean is better on the validation slice than either.
    items, test_mask = _glyphs(n=80)
    items = [(image, 3.0 * target) for image, target in items]
    result = fit(items, test_mask, [], "regression", _config(candidates=ALL), tmp_path)

    m = result.metrics
    rows = {c["kind"]: c for c in m["candidates"]}
    assert set(rows) == {"probe", "scratch", "blend"}
    assert m["selected"] == rows["blend"]["name"] and m["architecture"] == "blend"
    assert rows["blend"]["members"] == [rows["probe"]["name"], rows["scratch"]["name"]]
    members_best = max(rows["probe"]["validation_score"], rows["scratch"]["validation_score"])
    assert rows["blend"]["validation_score"] > members_best
    weights = rows["blend"]["hyper"]["weights"]
    assert sum(weights) == pytest.approx(1.0) and min(weights) > 0
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["architecture"] == "blend" and meta["input_size"] == 224
    assert [(x["architecture"], x["input_size"], x["pool"]) for x in meta["blend"]["members"]] == [
        ("tf_efficientnet_lite0", 224, 1),
        ("resnet10t", 32, 7),
    ]

    eager, traced, onnx_scores, _ = _served(tmp_path, _test_images(items, test_mask))
    values = [o["value"] for o in eager]
    np.testing.assert_allclose(values, [p["predicted"] for p in result.predictions], atol=1e-4)
    np.testing.assert_allclose([o["value"] for o in traced], values, atol=1e-4)
    np.testing.assert_allclose(onnx_scores, values, atol=1e-4)
    assert len(eager[0]["descriptor"]) == 1280 + 512  # both members' features side by side


@pytest.mark.parametrize("task_type", ["multi_class", "multi_label"])
def test_a_net_from_scratch_trained_on_the_probes_cache_is_served_behind_the_pooling(tmp_path, task_type):
    items, test_mask = _glyphs(n=80)
    if task_type == "multi_label":
        items = [(image, [target]) for image, target in items]
    result = fit(items, test_mask, LABELS, task_type, _config(candidates=ALL), tmp_path)

    assert result.metrics["selected"] == "scratch:resnet10t@32"  # mirrored glyphs: the scratch net's data
    assert result.metrics["input_size"] == 224  # it reads the probe's input, pooled by 7
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["blend"]["members"] == [
        {"architecture": "resnet10t", "input_size": 32, "pool": 7, "mean": meta["mean"], "std": meta["std"]}
    ]
    eager, traced, onnx_scores, predictor = _served(tmp_path, _test_images(items, test_mask))
    probs = [o["probs"] for o in eager]
    np.testing.assert_allclose(probs, [p["probs"] for p in result.predictions], atol=1e-4)
    np.testing.assert_allclose([o["probs"] for o in traced], probs, atol=1e-4)
    np.testing.assert_allclose(onnx_scores, probs, atol=1e-4)
    assert predictor.input_size == 224 and len(eager[0]["descriptor"]) == 512
    if task_type == "multi_label":
        assert meta["thresholds"] is not None and len(meta["thresholds"]) == 2


def test_without_the_blend_kind_the_net_from_scratch_keeps_the_images_own_size(tmp_path):
    items, test_mask = _glyphs(n=80)
    result = fit(items, test_mask, LABELS, "multi_class", _config(candidates=("probe", "scratch")), tmp_path)
    assert result.metrics["selected"] == "scratch:resnet10t@32" and result.metrics["input_size"] == 32
    assert "blend" not in json.loads((tmp_path / "model.json").read_text())
