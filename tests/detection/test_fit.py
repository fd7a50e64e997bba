"""ml.detection's training choices on tiny scenes: early stopping, frozen early stages, the input
size chosen from the boxes, and the configuration saved in model.json (old ones still load)."""

from __future__ import annotations

import json

import torch

from ml.detection.detector import (
    DetectConfig,
    DetectionExample,
    DetectionPredictor,
    build_detector,
    choose_input_size,
    fit_detector,
)

from .scenes import png, scenes

LABELS = [{"id": "square", "name": "square"}, {"id": "disc", "name": "disc"}]


def _examples(n: int, seed: int = 3, size=(96, 80)):
    return [
        DetectionExample(image=png(image), boxes=b, labels=lab) for image, b, lab in scenes(n, seed, size)
    ]


def _tiny(**overrides) -> DetectConfig:
    base = {"input_size": 64, "epochs": 8, "batch_size": 4, "pretrained": False, "num_threads": 1}
    return DetectConfig(**{**base, **overrides})


def test_early_stopping_stops_when_the_validation_score_stops_improving_and_says_why():
    examples = _examples(24)
    mask = [i >= 20 for i in range(24)]
    # lr 0: the validation score never improves, so the rate drops after `patience` epochs and the
    # training stops after `patience` more, long before the 8 epochs allowed.
    config = _tiny(lr=0.0, val_fraction=0.3, min_val_images=4, patience=1, min_epochs=1)
    metrics = fit_detector(examples, mask, LABELS, config).metrics
    assert metrics["stopped"] == "improvement"
    assert metrics["epochs"] == 3 and metrics["best_epoch"] == 1
    assert metrics["val_images"] == 6 and metrics["train_images"] == 20
    assert all("val_map50" in row for row in metrics["history"])


def test_without_enough_images_for_a_validation_slice_the_epochs_run_out():
    metrics = fit_detector(_examples(12), [i >= 10 for i in range(12)], LABELS, _tiny(epochs=2)).metrics
    assert (metrics["stopped"], metrics["epochs"], metrics["val_images"]) == ("epochs", 2, 0)
    assert "val_map50" not in metrics["history"][0]


def test_frozen_stages_get_no_gradient_and_the_rest_does():
    model = build_detector(2, _tiny(freeze_stages=3))
    model.train()
    images = [torch.rand(3, 64, 64) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([1])}] * 2
    sum(model(images, targets).values()).backward()
    body = model.backbone.body
    for module in (body.conv_stem, *list(body.blocks)[:3]):
        assert all(not p.requires_grad and p.grad is None for p in module.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in body.blocks[3].parameters())
    assert all(p.grad is not None for p in model.head.parameters() if p.requires_grad)
    unfrozen = build_detector(2, _tiny(freeze_stages=0))
    assert all(p.requires_grad for p in unfrozen.parameters())


def test_the_input_size_follows_the_objects_sizes():
    big = [DetectionExample(image=b"", boxes=[[0, 0, 100, 100]], labels=[0], size=(384, 288))]
    small = [DetectionExample(image=b"", boxes=[[0, 0, 20, 30]], labels=[0], size=(384, 288))]
    tiny_photo = [DetectionExample(image=b"", boxes=[[0, 0, 4, 4]], labels=[0], size=(200, 150))]
    assert choose_input_size(big, [0]) == 256
    assert choose_input_size(small, [0]) == 384  # 461 wanted, the images' own size is the cap
    assert choose_input_size(tiny_photo, [0]) == 256  # never below 256


def test_the_chosen_configuration_is_saved_and_loads_and_old_versions_load_too(tmp_path):
    examples = _examples(12, size=(192, 160))
    config = _tiny(input_size=0, epochs=1, freeze_stages=2)
    result = fit_detector(examples, [i >= 10 for i in range(12)], LABELS, config, out_dir=tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["input_size"] == meta["config"]["input_size"] == result.metrics["input_size"] == 256
    assert meta["config"]["freeze_stages"] == 2 and meta["config"]["patience"] == 2
    predictor = DetectionPredictor.load(tmp_path)
    answers = predictor.predict([examples[10].image])
    assert predictor.input_size == 256 and "objects" in answers[0]

    # A version saved before these fields existed: its config lacks them and still loads.
    for key in ("freeze_stages", "val_fraction", "min_val_images", "patience", "min_epochs"):
        meta["config"].pop(key)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    old = DetectionPredictor.load(tmp_path)
    assert old.predict([examples[10].image])[0]["objects"] == answers[0]["objects"]
