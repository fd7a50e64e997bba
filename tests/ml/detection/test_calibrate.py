"""What a detector's ``prob`` means (ml/detection/calibrate.py): a map from FCOS's scores to the
share of hits, fitted on the validation slice, that keeps the boxes and their order, and that every
runtime (torch, ONNX Runtime, the download bundle) applies alike."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.detection import postprocess
from ml.detection.calibrate import MIN_BOXES, fit_calibration
from ml.detection.detector import DetectConfig, DetectionExample, DetectionPredictor, fit_detector
from ml.detection.evaluate import hits
from tests.detection.scenes import png, scenes

LABELS = [{"id": "sq", "name": "square"}, {"id": "di", "name": "disc"}]
# 32 training scenes of which 8 the validation slice (the defaults carve none from so few), 8 test.
SMALL = dict(
    input_size=96, epochs=10, batch_size=8, seed=5, num_threads=1, val_fraction=0.25, min_val_images=6
)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_the_fit_finds_the_map_the_hits_were_drawn_from():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.05, 0.95, 20000)
    truth = _sigmoid(2.0 * np.log(scores / (1 - scores)) - 1.0)
    hit = rng.uniform(size=scores.size) < truth
    fitted = fit_calibration(scores, hit)
    assert abs(fitted["slope"] - 2.0) < 0.1 and abs(fitted["intercept"] + 1.0) < 0.1, fitted
    assert (fitted["boxes"], fitted["hits"]) == (20000, int(hit.sum()))


def test_no_map_without_boxes_that_can_support_one():
    assert fit_calibration([0.5] * (MIN_BOXES - 1), [True, False] * 4 + [True]) is None  # too few
    assert fit_calibration(np.linspace(0.1, 0.9, 40), [True] * 40) is None  # no miss
    assert fit_calibration(np.linspace(0.1, 0.9, 40), [False] * 40) is None  # no hit
    # Hits only at the low scores: a decreasing map would reverse the boxes' order. Never kept.
    assert fit_calibration(np.linspace(0.05, 0.95, 60), [True] * 30 + [False] * 30) is None


def test_a_few_boxes_move_the_scores_less_than_many():
    """The prior pulls towards the identity: the same evidence, ten times as much, moves it further."""
    scores = np.tile([0.35, 0.4, 0.45, 0.8, 0.85], 4)
    hit = np.tile([False, False, False, True, True], 4)
    few, many = fit_calibration(scores, hit), fit_calibration(np.tile(scores, 10), np.tile(hit, 10))
    at = np.array([0.4])
    assert postprocess.calibrated(at, many)[0] < postprocess.calibrated(at, few)[0] < 0.4


def test_the_map_keeps_the_order_and_the_cut_off_finds_its_scores():
    calibration = {"slope": 4.0, "intercept": -2.7}
    raw = np.linspace(0.05, 0.999, 500, dtype=np.float32)
    probabilities = postprocess.calibrated(raw, calibration)
    assert np.all(np.diff(probabilities) >= 0) and probabilities[0] < 1e-3 < 0.99 < probabilities[-1]
    for cut in (0.01, 0.3, 0.5, 0.9):
        floor = postprocess.raw_score(cut, calibration)
        assert postprocess.calibrated(np.array([floor / (1 - 1e-6)]), calibration)[0] == pytest.approx(cut)
        # Every raw score whose probability reaches the cut-off passes the raw floor.
        assert np.all(raw[probabilities >= cut] >= floor)
    # The inverse gives the raw scores back (where float32 probabilities still tell them apart).
    apart = probabilities < 0.99
    back = postprocess.uncalibrated(probabilities[apart], calibration)
    np.testing.assert_allclose(back, raw[apart], rtol=1e-5)
    assert postprocess.calibrated(raw, None) is raw and postprocess.raw_score(0.3, None) == 0.3


def test_hits_are_counted_as_map_counts_them():
    truth = [{"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [0, 1]}]
    predicted = [
        {
            "boxes": [[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30], [50, 50, 60, 60]],
            "scores": [0.6, 0.9, 0.5, 0.4],
            "labels": [0, 0, 0, 1],
        }
    ]
    # Best first: the 0.9 box takes the square, the 0.6 one is a double, the 0.5 one has the wrong
    # label, the 0.4 one is on the background.
    assert hits(truth, predicted) == ([0.9, 0.6, 0.5, 0.4], [True, False, False, False])


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """The same training with and without the calibration (same seed: the same weights)."""
    data = scenes(40, seed=13)
    examples = [DetectionExample(image=png(image), boxes=b, labels=lab) for image, b, lab in data]
    mask = [i >= 32 for i in range(40)]
    out = tmp_path_factory.mktemp("calibrated")
    with_map = fit_detector(examples, mask, LABELS, DetectConfig(**SMALL), out_dir=out)
    raw_out = tmp_path_factory.mktemp("raw")
    without = fit_detector(examples, mask, LABELS, DetectConfig(**SMALL, calibrate=False), out_dir=raw_out)
    return with_map, out, without, raw_out


def test_a_trained_version_answers_probabilities_fitted_on_its_validation_slice(twins):
    with_map, out, without, raw_out = twins
    calibration = with_map.metrics["calibration"]
    assert with_map.metrics["val_images"] == 8 and calibration["boxes"] >= MIN_BOXES, calibration
    assert calibration["slope"] > 0 and without.metrics["calibration"] is None
    assert json.loads((out / "model.json").read_text())["calibration"] == calibration
    # The same weights: the same boxes in the same order, so the same mAP; only the probabilities
    # (and which boxes pass the 0.3 the precision is reported at) differ.
    assert with_map.metrics["map50"] == without.metrics["map50"]

    def scores(metrics):
        return [(row["loss"], row["val_map50"]) for row in metrics["history"]]

    assert scores(with_map.metrics) == scores(without.metrics)
    images = [png(image) for image, _, _ in scenes(4, seed=77)]
    answered = DetectionPredictor.load(out, mode="eager").predict(images)
    raw = DetectionPredictor.load(raw_out, mode="eager").predict(images)
    for mine, theirs in zip(answered, raw, strict=True):
        assert [o["bound_box"] for o in mine["objects"]] == [o["bound_box"] for o in theirs["objects"]]
        expected = postprocess.calibrated(np.array([o["prob"] for o in theirs["objects"]]), calibration)
        assert np.allclose([o["prob"] for o in mine["objects"]], expected, atol=1e-5)


def test_every_runtime_answers_the_same_probabilities(twins):
    from ml.detection.export import export_detector

    _, out, _, _ = twins
    export_detector(out)
    spec = json.loads((out / "model.json").read_text())["calibration"]
    onnx = DetectionPredictor.load(out, mode="onnx", num_threads=1)
    assert onnx.onnx is not None
    assert onnx.onnx_spec["calibration"] == {k: spec[k] for k in ("slope", "intercept")}
    torch_served = DetectionPredictor.load(out, mode="eager", num_threads=1)
    images = [png(image) for image, _, _ in scenes(4, seed=78)]
    for mine, theirs in zip(onnx.predict(images), torch_served.predict(images), strict=True):
        strong = [o for o in theirs["objects"] if o["prob"] >= 0.05]
        assert [o["label"] for o in mine["objects"][: len(strong)]] == [o["label"] for o in strong]
        assert np.allclose(
            [o["prob"] for o in mine["objects"][: len(strong)]], [o["prob"] for o in strong], atol=0.01
        )
    # A cut-off in probabilities answers the same objects, cut there, in both runtimes.
    for predictor in (onnx, torch_served):
        inputs = [predictor.preprocess(data) for data in images]
        whole = predictor.predict_batch(inputs)
        for cut in (0.05, 0.3, 0.5):
            for full, cut_off in zip(whole, predictor.predict_batch(inputs, min_prob=cut), strict=True):
                assert cut_off["objects"] == [o for o in full["objects"] if o["prob"] >= cut]
    # The bundle's Detector (postprocess.py alone) answers the service's probabilities.
    detector = postprocess.Detector(out, num_threads=1)
    path = out / "scene.png"
    path.write_bytes(images[0])
    alone = detector.detect(path)
    served = onnx.predict([images[0]])[0]["objects"]
    assert len(alone) == len(served)
    assert np.allclose([o["prob"] for o in alone], [o["prob"] for o in served], atol=1e-6)
    assert [o for o in alone if o["prob"] >= 0.3] == detector.detect(path, keep_prob=0.3)
