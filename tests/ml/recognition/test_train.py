"""fit() learns from images the tests draw, reports metrics, and saves a version the
predictor reloads with identical outputs."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image

from ml.config import TrainConfig
from ml.models import PACKAGE_NAME
from ml.recognition.predictor import Predictor
from ml.recognition.recipe import fit
from tests.pictures import SHAPE_COLOURS as COLOURS
from tests.pictures import coloured_shape, grey, stripes_and_dot


def _test_images(items, test_mask):
    return [items[i][0] for i, t in enumerate(test_mask) if t]


def test_it_learns_colours_from_scratch_and_the_saved_version_predicts_the_same(
    tmp_path, colour_dataset, scratch_config
):
    items, test_mask, labels = colour_dataset
    reports = []
    result = fit(items, test_mask, labels, "multi_class", scratch_config, tmp_path, progress=reports.append)

    m = result.metrics
    assert m["accuracy"] >= 0.8  # chance is 1/3
    assert m["pretrained"] is None
    assert m["number_of_training_images"] == 72 and m["number_of_testing_images"] == 18
    assert m["epochs"] == 8 and m["training_time"] > 0
    assert {"precision", "recall", "f1"} <= m.keys()
    assert [row["name"] for row in m["per_label"]] == list(COLOURS)
    assert set(m["per_label"][0]) == {"label_id", "name", "precision", "recall", "f1", "support", "threshold"}
    assert m["confusion_matrix"]["labels"] == list(COLOURS)
    assert np.array(m["confusion_matrix"]["matrix"]).sum() == 18

    assert [r["epoch"] for r in reports] == list(range(1, 9))
    assert reports[-1]["percent"] == 100.0 and all(r["epochs"] == 8 for r in reports)

    assert [p["index"] for p in result.predictions] == [i for i, t in enumerate(test_mask) if t]
    first = result.predictions[0]
    assert first["true"] == items[first["index"]][1] and len(first["probs"]) == 3

    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["architecture"] == "resnet10t" and meta["input_size"] == 32
    assert meta["labels"] == labels and meta["task_type"] == "multi_class"
    assert meta["config"]["architecture"] == "resnet10t" and meta["metrics"]["accuracy"] == m["accuracy"]

    predictor = Predictor.load(tmp_path, device="cpu")
    outputs = predictor.predict(_test_images(items, test_mask), descriptor=True)
    np.testing.assert_allclose(
        [o["probs"] for o in outputs], [p["probs"] for p in result.predictions], atol=1e-4
    )
    descriptor = np.array(outputs[0]["descriptor"])
    assert descriptor.ndim == 1 and abs(np.linalg.norm(descriptor) - 1) < 1e-4


def test_it_fine_tunes_the_package_weights(tmp_path, colour_dataset):
    items, test_mask, labels = colour_dataset
    config = TrainConfig(
        architecture="tf_efficientnet_lite0",
        pretrained="package",
        input_size=64,
        epochs=2,
        batch_size=32,
        num_threads=1,
    )
    result = fit(items, test_mask, labels, "multi_class", config, tmp_path)
    assert result.metrics["pretrained"] == PACKAGE_NAME
    assert result.metrics["accuracy"] >= 0.8  # chance is 1/3
    predictor = Predictor.load(tmp_path, device="cpu")
    probs = [o["probs"] for o in predictor.predict(_test_images(items, test_mask))]
    np.testing.assert_allclose(probs, [p["probs"] for p in result.predictions], atol=1e-4)


def test_it_learns_independent_labels_and_stores_a_threshold_per_label(tmp_path, scratch_config):
    rng = np.random.default_rng(1)
    labels = [{"id": "s", "name": "stripes"}, {"id": "d", "name": "dot"}]
    items = []
    for k in range(100):
        stripes, dot = k % 2 == 1, (k // 2) % 2 == 1
        target = [j for j, on in enumerate((stripes, dot)) if on]  # [] = neither
        items.append((stripes_and_dot(stripes, dot, rng), target))
    test_mask = [k % 5 == 0 for k in range(100)]
    config = dataclasses.replace(scratch_config, epochs=12)
    result = fit(items, test_mask, labels, "multi_label", config, tmp_path)

    m = result.metrics
    assert m["f1"] >= 0.8
    assert all(0 < row["threshold"] < 1 for row in m["per_label"])
    assert len(m["confusion_matrix"]["matrices"]) == 2
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["thresholds"] == [row["threshold"] for row in m["per_label"]]
    for p in result.predictions:
        assert p["predicted"] == [j for j in range(2) if p["probs"][j] >= meta["thresholds"][j]]


def test_it_learns_brightness_as_a_regression_in_target_units(tmp_path, scratch_config):
    rng = np.random.default_rng(2)
    levels = rng.uniform(0.05, 0.95, size=80)
    items = [(grey(v, rng), float(100 * v)) for v in levels]  # targets 5..95
    test_mask = [k % 5 == 0 for k in range(80)]
    config = dataclasses.replace(scratch_config, epochs=15)
    result = fit(items, test_mask, [{"id": "b", "name": "brightness"}], "regression", config, tmp_path)

    m = result.metrics
    assert m["accuracy"] is None
    assert m["mae"] < 10  # a tenth of the range; predicting the mean gives ~22
    assert m["r2"] > 0.7 and m["rmse"] >= m["mae"]
    predictor = Predictor.load(tmp_path, device="cpu")
    values = [o["value"] for o in predictor.predict(_test_images(items, test_mask))]
    np.testing.assert_allclose(values, [p["predicted"] for p in result.predictions], atol=1e-3)


def test_it_takes_paths_bytes_and_pil_images_and_skips_unreadable_ones(tmp_path, scratch_config):
    rng = np.random.default_rng(3)
    items = []
    for k in range(24):
        img = coloured_shape(list(COLOURS.values())[k % 2], rng)
        if k % 3 == 0:
            path = tmp_path / f"{k}.png"
            img.save(path)
            items.append((str(path), k % 2))
        elif k % 3 == 1:
            buffer = io.BytesIO()
            img.save(buffer, format="JPEG")
            items.append((buffer.getvalue(), k % 2))
        else:
            items.append((img, k % 2))
    items.append((b"not an image", 0))
    items.append((tmp_path / "missing.jpg", 1))
    test_mask = [k % 4 == 0 for k in range(len(items))]
    labels = [{"id": "r", "name": "red"}, {"id": "g", "name": "green"}]
    config = dataclasses.replace(scratch_config, epochs=1)
    result = fit(items, test_mask, labels, "multi_class", config, tmp_path / "out")

    assert len(result.warnings) == 2
    assert "item 24" in result.warnings[0] and "item 25" in result.warnings[1]
    assert result.metrics["number_of_training_images"] + result.metrics["number_of_testing_images"] == 24


def test_the_input_size_follows_the_images_when_not_set(tmp_path, scratch_config):
    rng = np.random.default_rng(4)
    items = [
        (coloured_shape((200, 0, 0), rng, size=70), 0),
        (coloured_shape((0, 0, 200), rng, size=70), 1),
    ] * 4
    config = dataclasses.replace(scratch_config, input_size=None, epochs=1)
    labels = [{"id": "a", "name": "a"}, {"id": "b", "name": "b"}]
    result = fit(items, [False] * 6 + [True] * 2, labels, "multi_class", config, tmp_path)
    assert result.config.input_size == 64  # median 70 -> nearest multiple of 32
    assert Predictor.load(tmp_path).input_size == 64


def test_a_time_budget_stops_training_early(tmp_path, colour_dataset, scratch_config):
    items, test_mask, labels = colour_dataset
    config = dataclasses.replace(scratch_config, epochs=1000, time_budget_s=3.0)
    result = fit(items, test_mask, labels, "multi_class", config, tmp_path)
    assert 1 <= result.metrics["epochs"] < 1000
    assert result.metrics["training_time"] < 15


def test_it_rejects_a_target_of_the_wrong_type(scratch_config):
    labels = [{"id": "a", "name": "a"}]
    with pytest.raises(ValueError, match="invalid target"):
        fit([(Image.new("RGB", (8, 8)), [0])], [False], labels, "multi_class", scratch_config)


def test_it_trains_without_a_test_side_and_reports_no_accuracy(tmp_path, scratch_config):
    rng = np.random.default_rng(5)
    items = [(coloured_shape(rgb, rng), i) for i, rgb in enumerate(COLOURS.values()) for _ in range(4)]
    config = dataclasses.replace(scratch_config, epochs=1)
    result = fit(items, [False] * len(items), [{"id": n, "name": n} for n in COLOURS], "multi_class", config)
    assert result.metrics["accuracy"] is None and result.predictions == []
    assert result.metrics["number_of_testing_images"] == 0
