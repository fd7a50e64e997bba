"""The photo path of the recipe: the multi-backbone probe, k-fold selection on small data, the
opt-in final refit. Tiny drawn photos (96 px, larger than the small-image side), offline weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ml.config import TrainConfig
from ml.data import preprocess
from ml.recognition import multi, probe
from ml.recognition.context import Candidate
from ml.recognition.export import export_onnx
from ml.recognition.photo import SMALL_DATA_FOLDS
from ml.recognition.predictor import Predictor
from ml.recognition.recipe import fit
from ml.recognition.selection import against_cross_validated
from tests.pictures import shape_on_colour

LABELS = [{"id": "c", "name": "circle"}, {"id": "s", "name": "square"}]


def _shapes(n=30, seed=0, wide=False):
    rng = np.random.default_rng(seed)
    items = []
    for k in range(n):
        image = shape_on_colour(k % 2, rng)
        if wide:  # a wide photo: the shape sits in the middle third
            image = image.resize((192, 96))
        items.append((image, k % 2))
    return items, [k % 5 == 0 for k in range(n)]


def _config(**kwargs) -> TrainConfig:
    return TrainConfig(**{"num_threads": 1, "seed": 0, "candidates": ("probe_multi",), **kwargs})


def test_the_photo_probe_is_chosen_by_k_fold_over_the_whole_training_side(tmp_path):
    items, test_mask = _shapes()
    result = fit(items, test_mask, LABELS, "multi_class", _config(), tmp_path)
    m = result.metrics
    assert m["selected"].startswith("probe_multi:lite2")
    row = m["candidates"][0]
    # Both backbone sets were cross-validated on the same folds; the better one was kept.
    assert set(row["hyper"]["backbone_sets"]) == {"lite2", "lite2+lite0"}
    n_train = m["number_of_training_images"]
    assert row["hyper"]["cv_folds"] == SMALL_DATA_FOLDS and m["validation"]["cross_validation"] == {
        "candidate": m["selected"],
        "folds": SMALL_DATA_FOLDS,
        "images": n_train,
    }
    # The score is an accuracy over all training images (each predicted by the fold that held it
    # out), not over a 20 % slice.
    assert row["validation_score"] * n_train == pytest.approx(round(row["validation_score"] * n_train))
    assert m["accuracy"] >= 0.8
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["architecture"] == multi.MULTI_ARCHITECTURE and meta["resize"] == "squash"
    members = meta["multi"]["members"]
    assert members[0]["architecture"] == "tf_efficientnet_lite2" and members[0]["input_size"] == 260
    assert [m["input_size"] for m in members[1:]] in ([], [224])  # lite0 at its own native size


def test_the_choice_never_reads_the_test_side(tmp_path):
    items, test_mask = _shapes()
    first = fit(items, test_mask, LABELS, "multi_class", _config(), tmp_path / "a")
    poisoned = [
        (b"not an image", 1 - t) if test else (image, t)
        for (image, t), test in zip(items, test_mask, strict=True)
    ]
    second = fit(poisoned, test_mask, LABELS, "multi_class", _config(), tmp_path / "b")

    def chosen(result):  # everything but the seconds each candidate took
        return [{k: v for k, v in c.items() if k != "seconds"} for c in result.metrics["candidates"]]

    assert chosen(first) == chosen(second)
    weights = [(tmp_path / side / "model.safetensors").read_bytes() for side in ("a", "b")]
    assert weights[0] == weights[1]


def test_a_multi_backbone_head_serves_in_one_forward_pass_and_matches_its_onnx_export(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    items, test_mask = _shapes(n=20, wide=True)
    result = fit(items, test_mask, LABELS, "multi_class", _config(), tmp_path)
    predictor = Predictor.load(tmp_path, device="cpu")
    assert isinstance(predictor.model, multi.MultiProbe)
    calls = []
    predictor.model.head.register_forward_hook(lambda *_: calls.append(1))
    test_images = [items[i][0] for i, t in enumerate(test_mask) if t]
    outputs = predictor.predict(test_images, descriptor=True)
    assert len(calls) == 1  # the whole batch: one pass through every backbone and the one head
    np.testing.assert_allclose(
        [o["probs"] for o in outputs], [p["probs"] for p in result.predictions], atol=1e-4
    )
    assert len(outputs[0]["descriptor"]) == sum(predictor.model.dims) >= 1280
    # The served input is the whole (squashed) photo, not its centre crop.
    whole = preprocess(test_images[0], predictor.input_size, predictor.interpolation, "squash")
    assert torch.equal(predictor.preprocess(test_images[0]), whole)
    export_onnx(tmp_path, tmp_path / "model.onnx")
    batch = torch.stack([predictor.preprocess(image) for image in test_images]).numpy()
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: batch})[0]
    np.testing.assert_allclose(onnx_out, [o["probs"] for o in outputs], atol=1e-4)


def test_mirror_averaging_is_served_when_cross_validation_keeps_it():
    import timm

    net = timm.create_model("resnet10t", pretrained=False, num_classes=0).eval()
    module = multi.MultiProbe([net], sizes=[64], means=[[0.5] * 3], stds=[[0.5] * 3], num_outputs=2).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = module.features(x)
        module.flip_average = True
        averaged = module.features(x)
        expected = (net(x) + net(x.flip(-1))) / 2
    torch.testing.assert_close(averaged, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(plain, averaged)


def test_the_final_refit_changes_the_saved_weights_and_is_recorded(tmp_path):
    items, test_mask = _shapes()
    before = fit(items, test_mask, LABELS, "multi_class", _config(), tmp_path / "a")
    after = fit(items, test_mask, LABELS, "multi_class", _config(final_refit=True), tmp_path / "b")
    # The metrics are those of the 80/20 run, made before the refit.
    assert after.metrics["accuracy"] == before.metrics["accuracy"]
    assert "final_refit" not in before.metrics
    assert after.metrics["final_refit"]["done"] is True
    assert after.metrics["final_refit"]["images"] == len(items)
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert not torch.equal(a["head.weight"], b["head.weight"])
    frozen = [k for k in a if k.startswith("backbones.")]
    assert frozen and all(torch.equal(a[k], b[k]) for k in frozen)  # only the head learns
    assert json.loads((tmp_path / "b" / "model.json").read_text())["config"]["final_refit"] is True


def test_a_net_winner_is_refit_on_every_image_too(tmp_path):
    from tests.pictures import glyph

    rng = np.random.default_rng(0)
    items = [(glyph(k % 2 == 1, rng, size=32), k % 2) for k in range(30)]
    test_mask = [k % 5 == 0 for k in range(30)]
    config = TrainConfig(
        architecture="resnet10t", pretrained="none", epochs=2, num_threads=1, final_refit=True
    )
    plain = fit(
        items,
        test_mask,
        LABELS,
        "multi_class",
        TrainConfig(**{**config.to_dict(), "final_refit": False}),
        tmp_path / "a",
    )
    refit = fit(items, test_mask, LABELS, "multi_class", config, tmp_path / "b")
    assert refit.metrics["accuracy"] == plain.metrics["accuracy"]
    assert refit.metrics["final_refit"]["done"] is True and refit.metrics["final_refit"]["images"] == 30
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)


class _Ctx:
    def __init__(self, y):
        self.validation_info = {}
        self.task_type = "multi_class"
        self.y_train = torch.as_tensor(y)


def _one_hot(predicted, k=2):
    return np.eye(k)[np.asarray(predicted)]


def test_a_candidate_scored_on_the_slice_must_beat_the_k_fold_one_there_by_more_than_the_noise():
    y = np.array([0, 1] * 50)
    val_pos = list(range(80, 100))  # a 20-image slice
    photo = Candidate("probe_multi:lite2", "probe_multi", "x", 260)
    photo.score, photo.oof = 0.8, _one_hot(y)  # right on every slice image but ...
    photo.oof[[80, 81, 82, 83]] = _one_hot(1 - y[[80, 81, 82, 83]])  # ... 4 of them
    lucky = Candidate("finetune:x", "finetune", "x", 160)
    lucky.score = 0.9
    lucky.val_outputs = _one_hot(y[val_pos])
    lucky.val_outputs[[4, 5]] = _one_hot(1 - y[[84, 85]])  # 2 others wrong: 18 of 20 against 16
    ctx = _Ctx(y)
    assert against_cross_validated(ctx, photo, [lucky], False, val_pos) is photo
    rule = ctx.validation_info["rule"]
    assert rule["best_other"] == "finetune:x" and rule["images"] == 20
    assert rule["mean_gain"] == pytest.approx(0.1) and rule["needed"] > 0.1
    # Right where the probe is wrong on 8 of the 20, and nowhere worse: a real gain.
    photo.oof[80:88] = _one_hot(1 - y[80:88])
    better = Candidate("finetune:y", "finetune", "x", 160)
    better.score, better.val_outputs = 1.0, _one_hot(y[val_pos])
    assert against_cross_validated(_Ctx(y), photo, [better], False, val_pos) is better


def test_a_cv_estimate_scores_out_of_fold_outputs():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    x = rng.normal(size=(40, 8)) + y[:, None] * 1.5
    head = probe.fit_linear_head("multi_class", x, y, 2, folds=5)
    estimate = probe.cv_estimate("multi_class", head, y)
    assert estimate.folds == 5 and head.oof.shape == (40, 2)
    assert estimate.score == pytest.approx(float((head.oof.argmax(1) == y).mean()))
    assert sorted(np.concatenate(head.folds).tolist()) == list(range(40))
