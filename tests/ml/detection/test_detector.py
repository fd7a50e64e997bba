"""ml/detection/ (the detector and its evaluation) without Django: a tiny FCOS learns synthetic
scenes."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from PIL import Image

from ml.detection.detector import (
    DetectConfig,
    DetectionExample,
    DetectionPredictor,
    _load_examples,
    _predict_tensors,
    _Validation,
    augment,
    fit_detector,
)
from ml.detection.evaluate import average_precision, evaluate_detections, iou
from tests.detection.scenes import png, scenes

LABELS = [{"id": "sq", "name": "square"}, {"id": "di", "name": "disc"}]
# One thread: on a busy 2-core machine two spinning OpenMP threads train several times slower.
# 16 epochs: the default mosaic and copy-paste views are harder than plain ones; 8 epochs of these
# 24 scenes gave mAP@0.5 0.72 with them (0.96 without), 16 give 1.0.
TINY = dict(input_size=96, epochs=16, batch_size=8, seed=3, num_threads=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = scenes(32, seed=11)
    examples = [
        DetectionExample(image=png(image), boxes=boxes, labels=labels) for image, boxes, labels in data
    ]
    mask = [i >= 24 for i in range(32)]
    out = tmp_path_factory.mktemp("detector")
    result = fit_detector(examples, mask, LABELS, DetectConfig(**TINY), out_dir=out)
    return result, out


def test_a_trained_detector_finds_the_objects_of_unseen_scenes(trained):
    result, out = trained
    metrics = result.metrics
    assert (metrics["train_images"], metrics["test_images"]) == (24, 8)
    assert metrics["map50"] >= 0.8, metrics
    assert metrics["recall"] >= 0.8, metrics
    assert [row["name"] for row in metrics["per_label"]] == ["square", "disc"]
    assert all(row["ap"] >= 0.6 for row in metrics["per_label"]), metrics["per_label"]
    # Fresh scenes through the saved predictor: each true box is found with IoU > 0.5 and its label.
    predictor = DetectionPredictor.load(out)
    fresh = scenes(6, seed=99)
    answers = predictor.predict([png(image) for image, _, _ in fresh])
    found = total = 0
    for (_, boxes, labels), answer in zip(fresh, answers, strict=True):
        kept = [o for o in answer["objects"] if o["prob"] >= 0.3]
        for box, label in zip(boxes, labels, strict=True):
            total += 1
            same = [o for o in kept if o["label"] == label]
            found += bool(same) and iou(box, np.array([o["bound_box"] for o in same])).max() > 0.5
    assert found / total >= 0.8, (found, total)


def test_boxes_come_back_in_the_frame_of_the_image_given(trained):
    _, out = trained
    predictor = DetectionPredictor.load(out)
    image, boxes, _ = scenes(1, seed=5)[0]
    big = image.resize((image.width * 4, image.height * 4), Image.Resampling.NEAREST)
    # A JPEG four times larger decodes at a reduced scale (draft): boxes still in its own frame.
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=95)
    small_answer, big_answer = predictor.predict([png(image), buffer.getvalue()])
    confident = [o for o in small_answer["objects"] if o["prob"] >= 0.5]
    assert confident
    for small in confident:
        same = [o["bound_box"] for o in big_answer["objects"] if o["label"] == small["label"]]
        assert iou([v * 4 for v in small["bound_box"]], np.array(same)).max() > 0.8
    top_big = big_answer["objects"][0]
    assert iou(top_big["bound_box"], np.array([[v * 4 for v in b] for b in boxes])).max() > 0.5
    assert all(0 <= v <= big.width for v in top_big["bound_box"][::2])


def test_the_evaluation_lists_each_test_image_worst_first(trained):
    result, _ = trained
    images = result.predictions
    assert len(images) == 8
    errors = [r["false_positives"] + r["false_negatives"] for r in images]
    assert errors == sorted(errors, reverse=True)
    assert {"true", "predicted", "index"} <= set(images[0])
    assert all(i >= 24 for i in (r["index"] for r in images))


def _same_objects(mine: dict, theirs: dict) -> None:
    """The same objects: each of ``mine`` has one of ``theirs`` with its label, a box within 1e-3
    and a score within 1e-5. Two whose scores tie to 1e-5 may come in either order."""
    assert sorted(mine["labels"]) == sorted(theirs["labels"])
    unused = list(range(len(theirs["labels"])))
    for label, box, score in zip(mine["labels"], mine["boxes"], mine["scores"], strict=True):
        match = next(
            (
                j
                for j in unused
                if theirs["labels"][j] == label
                and abs(theirs["scores"][j] - score) <= 1e-5
                and np.max(np.abs(np.asarray(theirs["boxes"][j]) - box)) <= 1e-3
            ),
            None,
        )
        assert match is not None, f"no object like {label} {box} {score} in the whole net's answer"
        unused.remove(match)
    np.testing.assert_allclose(sorted(mine["scores"]), sorted(theirs["scores"]), atol=1e-5)


def test_the_validation_slice_scored_from_kept_frozen_stages_gets_the_whole_nets_answers(trained):
    # Scenes of two sizes, so batches are padded as torchvision pads them; 11 = a short last batch.
    _, out = trained
    model = DetectionPredictor.load(out, mode="eager").model
    data = scenes(6, seed=21) + scenes(5, seed=22, size=(80, 96))
    examples = [DetectionExample(image=png(image), boxes=b, labels=lab) for image, b, lab in data]
    cache = _load_examples(examples, 96)
    config = DetectConfig(**TINY)
    whole = _predict_tensors(model, [item[0] for item in cache], torch.device("cpu"))
    validation = _Validation(model, cache, list(range(11)), len(LABELS), config, torch.device("cpu"))
    first, again = validation.predict(model), validation.predict(model)  # the kept outputs, twice
    assert validation.batches and len(validation.batches) == 2
    assert sum(len(found["boxes"]) for found in whole) > 11
    for answers in (first, again):
        for mine, theirs in zip(answers, whole, strict=True):
            _same_objects(mine, theirs)
    score, predicted = validation.score(model)
    truth = [{"boxes": item[1].tolist(), "labels": item[2].tolist()} for item in cache]
    assert score == round(float(evaluate_detections(truth, whole, len(LABELS))["map50"]), 4) > 0.5
    assert predicted == again
    # The layout is back to the default after it (the weights are saved and exported from it).
    assert all(p.is_contiguous() for p in model.parameters())


def test_the_same_seed_trains_the_same_detector():
    data = scenes(8, seed=4)
    examples = [DetectionExample(image=png(image), boxes=b, labels=lab) for image, b, lab in data]
    config = DetectConfig(input_size=64, epochs=1, batch_size=4, seed=7, num_threads=1)
    mask = [i >= 6 for i in range(8)]
    first = fit_detector(examples, mask, LABELS, config).metrics
    second = fit_detector(examples, mask, LABELS, config).metrics
    assert first["history"][0]["loss"] == second["history"][0]["loss"]
    assert first["map50"] == second["map50"]


def test_augmentation_keeps_the_boxes_on_the_objects():
    image, boxes, labels = scenes(1, seed=8, size=(96, 80))[0]
    tensor = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    config = DetectConfig(scale_range=(0.6, 1.4))
    rng = random.Random(0)
    checked = 0
    for _ in range(40):
        out, out_boxes, out_labels = augment(
            tensor, torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels), config, rng
        )
        for box, label in zip(out_boxes.tolist(), out_labels.tolist(), strict=True):
            x1, y1, x2, y2 = (round(v) for v in box)
            centre = out[:, (y1 + y2) // 2, (x1 + x2) // 2].tolist()
            assert centre == ([220, 40, 40] if label == 0 else [40, 60, 220]), (box, centre)
            checked += 1
    assert checked > 20


def test_average_precision_is_the_all_point_area():
    # Two true boxes; predictions: hit (0.9), miss (0.8), hit (0.7): AP = 0.5*1 + 0.5*(2/3).
    assert average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(
        0.5 + 1 / 3
    )
    truth = [{"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [0, 0]}]
    predicted = [
        {
            "boxes": [[0, 0, 10, 10], [50, 50, 60, 60], [21, 21, 30, 30]],
            "scores": [0.9, 0.8, 0.7],
            "labels": [0, 0, 0],
        }
    ]
    result = evaluate_detections(truth, predicted, num_labels=2, threshold=0.75)
    assert result["map50"] == pytest.approx(round(0.5 + 1 / 3, 5))
    assert result["per_label"][1]["ap"] is None  # no true disc: left out of the mean
    # At 0.75 only the first two predictions count: one hit, one false positive, one box missed.
    assert (result["precision"], result["recall"]) == (0.5, 0.5)
    assert (result["images"][0]["false_positives"], result["images"][0]["false_negatives"]) == (1, 1)


def test_a_prediction_of_the_wrong_label_is_not_a_hit():
    truth = [{"boxes": [[0, 0, 10, 10]], "labels": [0]}]
    predicted = [{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [1]}]
    result = evaluate_detections(truth, predicted, num_labels=2, threshold=0.5)
    assert result["map50"] == 0.0
    assert (result["precision"], result["recall"]) == (0.0, 0.0)


def test_boxes_declared_in_another_frame_are_scaled_to_the_decoded_image():
    from ml.detection.detector import _load_examples

    image, boxes, labels = scenes(1, seed=12)[0]  # 96 x 80
    doubled = [[2 * v for v in box] for box in boxes]
    ((tensor, scaled, kept_labels),) = _load_examples(
        [DetectionExample(image=png(image), boxes=doubled, labels=labels, size=(192, 160))], longest=96
    )
    assert tuple(tensor.shape) == (3, 80, 96)
    assert scaled.tolist() == [[float(v) for v in box] for box in boxes]
    assert kept_labels.tolist() == labels
