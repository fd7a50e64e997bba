"""The second look at a detector's labels (ml/detection/second_look.py, postprocess.looked): the
pooling is torchvision's roi_align, the classifier folds its standardisation in, a sure classifier
relabels a box, a cut-off answers the same objects cut there, a fit keeps the look only when the
validation slice says so, and a version with a look answers the same through ONNX Runtime, torch
and the bundle alone."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align

from ml.detection import detector, postprocess, second_look
from ml.detection.detector import DetectConfig, DetectionExample, DetectionPredictor, fit_detector
from ml.detection.postprocess import looked, pooled
from tests.detection.scenes import png, scenes
from tests.ml.detection.test_export import LABELS, TINY, _matched, exported  # noqa: F401 - a fixture

SPEC = {"score_thresh": 0.05, "nms_thresh": 0.6, "detections_per_img": 100}


def _levels(rng, sizes=((4, 36, 48), (5, 18, 24), (6, 9, 12))) -> list[np.ndarray]:
    return [rng.normal(size=size).astype(np.float32) for size in sizes]


def test_pooling_is_roi_align_averaged_over_its_cells_inside_and_outside_the_map():
    rng = np.random.default_rng(0)
    levels = _levels(rng)
    corner = rng.uniform(0, 300, (20, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(1, 150, (20, 2))], axis=1)
    # One box larger than the image, one on its last pixels, one of a pixel.
    boxes = np.vstack([boxes, [[-20, -20, 400, 400], [380, 280, 384, 288], [10, 10, 11, 11]]])
    mine = pooled(levels, boxes, (8, 16, 32))
    theirs = torch.cat(
        [
            roi_align(
                torch.from_numpy(level)[None],
                [torch.from_numpy(boxes).float()],
                output_size=2,
                spatial_scale=1 / stride,
                sampling_ratio=2,
                aligned=True,
            ).mean((2, 3))
            for level, stride in zip(levels, (8, 16, 32), strict=True)
        ],
        dim=1,
    ).numpy()
    assert mine.shape == (23, 15)
    np.testing.assert_allclose(mine, theirs, atol=1e-5)


@pytest.mark.parametrize("num_labels", [2, 3])
def test_the_classifier_labels_features_it_can_separate_with_its_standardisation_folded_in(num_labels):
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(num_labels), 40)
    centres = rng.normal(scale=3.0, size=(num_labels, 6))
    # Features on very different scales and offsets: the folded standardisation must undo them.
    scale, offset = np.array([1e-3, 1, 10, 100, 1, 5]), np.array([5, -3, 100, 0, 2, 0])
    features = (centres[labels] + rng.normal(size=(len(labels), 6))) * scale + offset
    fitted = second_look.fit_labeller(features, labels, num_labels)
    assert fitted is not None and fitted["strides"] == [8, 16, 32] and fitted["boxes"] == len(labels)
    logits = features @ np.array(fitted["coef"]).T + np.array(fitted["intercept"])
    assert (logits.argmax(axis=1) == labels).mean() >= 0.95


def test_no_classifier_for_one_label_or_a_label_with_too_few_boxes():
    features = np.random.default_rng(2).normal(size=(21, 4))
    assert second_look.fit_labeller(features, [0] * 21, 1) is None
    assert second_look.fit_labeller(features, [0] * 20 + [1], 2) is None
    assert second_look.fit_labeller(features[:20], [0] * 20, 2) is None  # a label with no box


def _sure(num_features: int, label: int, num_labels: int = 2) -> dict:
    """A classifier that answers ``label`` with probability ~0.9 whatever the features."""
    intercept = np.zeros(num_labels)
    intercept[label] = np.log(0.9 / 0.1 * (num_labels - 1))
    return {
        "strides": [8, 16, 32],
        "coef": np.zeros((num_labels, num_features)).tolist(),
        "intercept": intercept.tolist(),
    }


def test_a_sure_look_relabels_a_box_and_its_weight_mixes_the_scores():
    levels = _levels(np.random.default_rng(3))
    boxes = np.array([[10, 10, 90, 90], [200, 100, 260, 180]], dtype=np.float32)
    scores, labels = np.array([0.8, 0.4], dtype=np.float32), np.array([0, 0])
    spec = {**SPEC, "second_look": {**_sure(15, label=1), "weight": 1.0}}
    out_boxes, out_scores, out_labels = looked(boxes, scores, labels, levels, spec)
    # Each box answers both labels: FCOS's score times the classifier's 0.9 for label 1, 0.1 for
    # label 0 (0.04 for the second box: under the 0.05 floor, left out).
    assert out_labels.tolist() == [1, 1, 0]
    np.testing.assert_allclose(out_scores, [0.72, 0.36, 0.08], atol=1e-5)
    np.testing.assert_array_equal(out_boxes, boxes[[0, 1, 0]])
    for weight in (0.5, 2.0):
        powered = {**SPEC, "second_look": {**_sure(15, label=1), "weight": weight}}
        _, mixed, mixed_labels = looked(boxes, scores, labels, levels, powered)
        expected = [(s * q**weight, k) for s in (0.8, 0.4) for q, k in ((0.9, 1), (0.1, 0))]
        expected = sorted((e for e in expected if e[0] > SPEC["score_thresh"]), reverse=True)
        np.testing.assert_allclose(mixed, [e[0] for e in expected], atol=1e-5)
        assert mixed_labels.tolist() == [e[1] for e in expected]
    # ``own`` keeps a share for FCOS's label: 0.8 x (0.5 x 0.1 + 0.5) for label 0 of the first box,
    # 0.8 x 0.5 x 0.9 for label 1; the second box 0.4 x 0.55 and 0.4 x 0.45.
    shared = {**SPEC, "second_look": {**_sure(15, label=1), "own": 0.5, "weight": 1.0}}
    _, own_scores, own_labels = looked(boxes, scores, labels, levels, shared)
    assert own_labels.tolist() == [0, 1, 0, 1]
    np.testing.assert_allclose(own_scores, [0.44, 0.36, 0.22, 0.18], atol=1e-5)
    # A floor leaves out what scores under it.
    assert looked(boxes, scores, labels, levels, spec, floor=0.3)[1].tolist() == pytest.approx([0.72, 0.36])
    # Without a look, or without boxes, nothing changes.
    assert looked(boxes, scores, labels, levels, SPEC)[1] is scores
    assert len(looked(boxes[:0], scores[:0], labels[:0], levels, spec)[0]) == 0


def test_two_labels_of_one_place_become_one_box_a_label_after_the_look():
    """FCOS keeps a box per label at one place (its NMS is per label); after the look both give
    every label, and the NMS keeps the better of each."""
    levels = _levels(np.random.default_rng(4))
    boxes = np.array([[10, 10, 90, 90], [12, 11, 91, 90]], dtype=np.float32)
    scores, labels = np.array([0.7, 0.3], dtype=np.float32), np.array([0, 1])
    spec = {**SPEC, "second_look": {**_sure(15, label=1), "weight": 0.5}}
    out_boxes, out_scores, out_labels = looked(boxes, scores, labels, levels, spec)
    assert sorted(out_labels.tolist()) == [0, 1]
    np.testing.assert_allclose(sorted(out_scores), sorted([0.7 * 0.9**0.5, 0.7 * 0.1**0.5]), atol=1e-5)


# --------------------------------------------------------------------------- trained versions


@pytest.fixture(scope="module")
def with_look(exported, tmp_path_factory):  # noqa: F811 - test_export's fixture
    """test_export's trained version, given a second look fitted on its own training boxes (as
    a training fits one), exported again."""
    from ml.detection.export import export_detector

    trained, _ = exported
    out = tmp_path_factory.mktemp("looked")
    for name in ("model.json", "model.safetensors"):
        shutil.copy(trained / name, out / name)
    training = [
        DetectionExample(image=png(image), boxes=b, labels=labels) for image, b, labels in scenes(24, seed=11)
    ]
    predictor = DetectionPredictor.load(out, mode="eager", num_threads=1)
    cache = detector._load_examples(training, predictor.input_size)
    fitted = detector._labeller(predictor.model, cache, range(len(cache)), 2, 0, torch.device("cpu"))
    meta = json.loads((out / "model.json").read_text())
    meta["second_look"] = {**fitted, "own": 0.25, "weight": 1.0}
    (out / "model.json").write_text(json.dumps(meta))
    export_detector(out)
    return out


def test_a_version_with_a_look_answers_alike_through_onnx_runtime_and_torch(with_look):
    onnx = DetectionPredictor.load(with_look, mode="auto", num_threads=1)
    torch_served = DetectionPredictor.load(with_look, mode="eager", num_threads=1)
    assert onnx.onnx is not None and onnx.second_look["weight"] == 1.0
    assert torch_served.second_look == onnx.second_look
    images = [png(image) for image, _, _ in scenes(6, seed=99)]
    onnx_answers, torch_answers = onnx.predict(images), torch_served.predict(images)
    assert sum(len([o for o in a["objects"] if o["prob"] >= 0.3]) for a in onnx_answers) >= len(images)
    # Near ties within 0.005 (not 0.001 as without a look): the look pools features up to the
    # padded edge, which the torch model pads with FCOS's 0 and ONNX Runtime's batch with grey 128.
    for mine, theirs in zip(onnx_answers, torch_answers, strict=True):
        _matched(theirs["objects"], mine["objects"], 0.3, tie=5e-3)
        _matched(mine["objects"], theirs["objects"], 0.3, tie=5e-3)


@pytest.mark.parametrize("mode", ["onnx", "eager"])
def test_a_cut_off_with_a_look_answers_the_same_objects_cut_there(with_look, mode):
    predictor = DetectionPredictor.load(with_look, mode=mode, num_threads=1)
    inputs = [predictor.preprocess(png(image)) for image, _, _ in scenes(6, seed=31)]
    whole = predictor.predict_batch(inputs)
    for cut in (0.0, 0.1, 0.3, 0.6):
        cut_answers = predictor.predict_batch(inputs, min_prob=cut)
        for full, cut_off in zip(whole, cut_answers, strict=True):
            assert cut_off["objects"] == [o for o in full["objects"] if o["prob"] >= cut]


def test_the_bundle_with_a_look_detects_alone_as_the_service_does(with_look, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for name in ("model.onnx", "model.json"):
        shutil.copy(with_look / name, bundle / name)
    detector_alone = postprocess.Detector(bundle, num_threads=1)
    assert detector_alone.spec["second_look"]["weight"] == 1.0
    image, _, _ = scenes(1, seed=21)[0]
    path = tmp_path / "scene.png"
    path.write_bytes(png(image))
    alone = detector_alone.detect(path)
    (served,) = DetectionPredictor.load(with_look, mode="onnx", num_threads=1).predict([path.read_bytes()])
    assert [o["label"] for o in alone] == [o["label"] for o in served["objects"]]
    np.testing.assert_allclose([o["prob"] for o in alone], [o["prob"] for o in served["objects"]], atol=1e-6)


def test_a_fit_keeps_the_look_only_when_it_raises_the_validation_score(tmp_path):
    """Whatever the slice says, the record and the version agree: a weight is kept only with a
    validation score above the one without, the best of those tried, and the saved version
    answers the test images as the fit scored them."""
    data = scenes(40, seed=5)
    examples = [DetectionExample(image=png(image), boxes=b, labels=labels) for image, b, labels in data]
    mask = [i >= 32 for i in range(40)]
    # 10 epochs: here the slice scored 0.979 without the look and 0.991 with it (kept).
    config = DetectConfig(
        **{**TINY, "epochs": 10, "decay_epochs": 10, "min_val_images": 4, "val_fraction": 0.25}
    )
    reported = []
    result = fit_detector(examples, mask, LABELS, config, out_dir=tmp_path, progress=reported.append)
    record = result.metrics["second_look"]
    if record is None:  # another CPU's rounding may learn the slice perfectly: nothing to look at
        assert result.metrics["val_map50"] >= 0.9999
        return
    stages = [info.get("stage") for info in reported]
    assert stages.count("second look at the labels") == 1, "the look's seconds are said, once"
    percents = [info["percent"] for info in reported]
    assert percents == sorted(percents), "never back"
    scores = record["val_map50_by_choice"]
    assert list(scores) == [f"{own}/{weight}" for own, weight in second_look.CHOICES]
    meta = json.loads((tmp_path / "model.json").read_text())
    if record["weight"] is None:
        assert max(scores.values()) <= record["val_map50_without"] + 1e-4
        assert meta["second_look"] is None
    else:
        chosen = f"{record['own']}/{record['weight']}"
        assert scores[chosen] == max(scores.values()) > record["val_map50_without"]
        assert (meta["second_look"]["own"], meta["second_look"]["weight"]) == (
            record["own"],
            record["weight"],
        )
    predictor = DetectionPredictor.load(tmp_path, mode="eager", num_threads=1)
    assert predictor.second_look == meta["second_look"]
    # The scenes are the input size: the fit and the service see the same pixels.
    answers = predictor.predict([examples[i].image for i in range(32, 40)])
    by_index = sorted(result.predictions, key=lambda image: image["index"])
    scored = [image["predicted"] for image in by_index]  # those at the 0.3 threshold
    assert sum(len(objects) for objects in scored) >= 4
    for answer, fit_side in zip(answers, scored, strict=True):
        served = [o for o in answer["objects"] if o["prob"] >= config.threshold]
        assert [o["label"] for o in served] == [o["label"] for o in fit_side]
        np.testing.assert_allclose([o["prob"] for o in served], [o["prob"] for o in fit_side], atol=1e-4)


def test_no_look_when_it_is_switched_off(tmp_path):
    data = scenes(40, seed=5)
    examples = [DetectionExample(image=png(image), boxes=b, labels=labels) for image, b, labels in data]
    mask = [i >= 32 for i in range(40)]
    config = DetectConfig(
        **{**TINY, "epochs": 3, "decay_epochs": 3, "min_val_images": 4, "val_fraction": 0.25},
        second_look=False,
    )
    result = fit_detector(examples, mask, LABELS, config, out_dir=tmp_path)
    assert result.metrics["second_look"] is None
    assert json.loads((tmp_path / "model.json").read_text())["second_look"] is None
