"""ml/detection/augment.py: mosaic and copy-paste views keep every box on the pixels it labels."""

from __future__ import annotations

import random

import torch

from ml.detection.augment import compose, copy_paste, mosaic


def _grid_scene(part: int, w: int = 96, h: int = 72, step: int = 12, side: int = 6):
    """A flat image of value ``10 * (part + 1)`` with a grid of boxes of value ``200 + label``;
    the labels cycle over 0-2 and the part's index is in the background, not the boxes."""
    image = torch.full((3, h, w), 10 * (part + 1), dtype=torch.uint8)
    boxes, labels = [], []
    for y in range(2, h - side, step):
        for x in range(2, w - side, step):
            label = len(labels) % 3
            image[:, y : y + side, x : x + side] = 200 + label
            boxes.append([x, y, x + side, y + side])
            labels.append(label)
    return image, torch.tensor(boxes, dtype=torch.float32), torch.tensor(labels)


def _assert_on_their_pixels(image, boxes, labels):
    _, h, w = image.shape
    for box, label in zip(boxes.tolist(), labels.tolist(), strict=True):
        x1, y1, x2, y2 = box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h, box
        inside = image[:, round(y1) : round(y2), round(x1) : round(x2)]
        assert (inside == 200 + label).all(), (box, label)


def test_a_mosaic_holds_boxes_of_its_four_scenes_on_their_pixels():
    parts = [_grid_scene(k) for k in range(4)]
    for seed in range(20):
        image, boxes, labels = mosaic(parts, random.Random(seed))
        assert image.shape == parts[0][0].shape
        _assert_on_their_pixels(image, boxes, labels)
        # Every quadrant (at least a quarter of each side) shows boxes; its background is its part's.
        backgrounds = {int(v) for v in image[0].unique()} - {200, 201, 202}
        assert backgrounds == {10, 20, 30, 40}
        assert len(boxes) >= 4


def test_a_mosaic_keeps_a_cut_box_only_with_half_its_area():
    image = torch.zeros((3, 40, 40), dtype=torch.uint8)
    image[:, 0:40, 0:40] = 200
    whole = (image, torch.tensor([[0.0, 0.0, 40.0, 40.0]]), torch.tensor([0]))
    for seed in range(10):
        _, boxes, labels = mosaic([whole] * 4, random.Random(seed))
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        assert (areas >= 0.5 * 1600).all()
        assert labels.tolist() == [0] * len(labels)


def test_copy_paste_adds_donor_boxes_with_their_labels_and_pixels():
    target = _grid_scene(0, step=48)
    donors = [_grid_scene(k, step=12) for k in range(1, 3)]
    image, boxes, labels = copy_paste(target, donors, 6, random.Random(1))
    assert len(boxes) > len(target[1])
    assert boxes[: len(target[1])].tolist() == target[1].tolist()
    assert labels[: len(target[2])].tolist() == target[2].tolist()
    _assert_on_their_pixels(image, boxes[len(target[1]) :], labels[len(target[2]) :])
    assert target[0].max() == 202  # the target given is not changed


def test_copy_paste_covers_at_most_the_share_allowed_of_any_box():
    target = _grid_scene(0, step=20, side=10)
    donors = [_grid_scene(1, step=24, side=16)]
    _, boxes, _ = copy_paste(target, donors, 10, random.Random(3), max_cover=0.4)
    for k in range(len(target[1]), len(boxes)):
        for j in range(k):
            a, b = boxes[k], boxes[j]
            ix = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
            iy = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
            assert ix * iy <= 0.4 * float((b[2] - b[0]) * (b[3] - b[1])) + 1e-6


def test_the_same_seed_composes_the_same_view_and_off_draws_nothing():
    item, pool = _grid_scene(0), [_grid_scene(k) for k in range(1, 4)]
    first = compose(item, pool, 0.5, 3, random.Random(5))
    second = compose(item, pool, 0.5, 3, random.Random(5))
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    rng = random.Random(5)
    assert compose(item, pool, 0.0, 0, rng) is item
    assert rng.random() == random.Random(5).random()


def test_a_detector_trains_on_mosaic_and_pasted_views_the_same_for_a_seed():
    from ml.detection.detector import DetectConfig, DetectionExample, fit_detector
    from tests.detection.scenes import png, scenes

    data = scenes(8, seed=4)
    examples = [DetectionExample(image=png(image), boxes=b, labels=lab) for image, b, lab in data]
    labels = [{"id": "sq", "name": "square"}, {"id": "di", "name": "disc"}]
    config = DetectConfig(
        input_size=64, epochs=1, batch_size=4, seed=7, num_threads=1, mosaic=1.0, copy_paste=2
    )
    mask = [i >= 6 for i in range(8)]
    first = fit_detector(examples, mask, labels, config).metrics
    second = fit_detector(examples, mask, labels, config).metrics
    plain = fit_detector(examples, mask, labels, DetectConfig(**{**config.__dict__, "mosaic": 0.0})).metrics
    assert first["history"][0]["loss"] == second["history"][0]["loss"]
    assert first["history"][0]["loss"] != plain["history"][0]["loss"]


def test_a_version_saved_without_the_augmentation_fields_loads(tmp_path):
    import json

    from ml.detection.detector import DetectConfig, DetectionExample, DetectionPredictor, fit_detector
    from tests.detection.scenes import png, scenes

    data = scenes(6, seed=5)
    examples = [DetectionExample(image=png(image), boxes=b, labels=lab) for image, b, lab in data]
    labels = [{"id": "sq", "name": "square"}, {"id": "di", "name": "disc"}]
    config = DetectConfig(input_size=64, epochs=1, batch_size=4, seed=1, num_threads=1)
    fit_detector(examples, [i >= 4 for i in range(6)], labels, config, out_dir=tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert (meta["config"]["mosaic"], meta["config"]["copy_paste"]) == (config.mosaic, config.copy_paste)
    answer = DetectionPredictor.load(tmp_path).predict([examples[5].image])
    for key in ("mosaic", "copy_paste"):
        meta["config"].pop(key)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert DetectionPredictor.load(tmp_path).predict([examples[5].image]) == answer
