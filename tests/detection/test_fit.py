"""ml.detection's training choices on tiny scenes: the decaying schedule and the plateau rule
(early stopping, its minimum gain), frozen early stages and the cache of their features, the input
size chosen from the boxes, and the configuration saved in model.json (old ones still load)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from ml.detection import detector
from ml.detection.detector import (
    DetectConfig,
    DetectionExample,
    DetectionPredictor,
    _EarlyStopping,
    _frozen_forward,
    _losses_from_frozen,
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
    config = _tiny(lr=0.0, val_fraction=0.3, min_val_images=4, patience=1, min_epochs=1, decay_epochs=0)
    metrics = fit_detector(examples, mask, LABELS, config).metrics
    assert metrics["stopped"] == "improvement"
    assert metrics["epochs"] == 3 and metrics["best_epoch"] == 1
    assert metrics["val_images"] == 6 and metrics["train_images"] == 20
    assert all("val_map50" in row for row in metrics["history"])


def test_a_decaying_schedule_runs_its_planned_epochs_whatever_the_validation_score():
    examples = _examples(24)
    mask = [i >= 20 for i in range(24)]
    # The same flat score that stops the plateau rule above after 3 epochs: the cosine runs its 4.
    config = _tiny(lr=0.0, val_fraction=0.3, min_val_images=4, patience=1, min_epochs=1, decay_epochs=4)
    metrics = fit_detector(examples, mask, LABELS, config).metrics
    assert (metrics["stopped"], metrics["epochs"], metrics["best_epoch"]) == ("epochs", 4, 1)
    assert metrics["val_images"] == 6 and len(metrics["history"]) == 4


def test_the_decaying_schedules_rate_falls_along_a_cosine_over_the_planned_epochs(monkeypatch):
    rates = []
    original = torch.optim.AdamW.step

    def recorded(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recorded)
    examples = _examples(24)
    config = _tiny(val_fraction=0.3, min_val_images=4, decay_epochs=3, warmup_steps=2, lr=1e-3)
    fit_detector(examples, [i >= 20 for i in range(24)], LABELS, config)
    # 14 training images, full batches of 4: 4 steps an epoch, 12 in all; warm-up of 2 steps.
    assert len(rates) == 12
    assert rates[:3] == pytest.approx([5e-4, 1e-3, 1e-3])
    assert all(a > b for a, b in zip(rates[2:], rates[3:], strict=False))  # falls after the warm-up
    assert rates[-1] == pytest.approx(detector._lr_at(11, 12, config)) and rates[-1] < 1e-4


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


@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_a_box_head_pushed_below_zero_learns_again_only_with_softplus(activation):
    """A relu box head whose inputs all turned negative gets no gradient again: every box has no
    size, and the detector finds nothing however long it trains (a hard development scene's seed
    did this). Softplus keeps a gradient there, and its boxes keep a size."""
    torch.manual_seed(0)
    model = build_detector(2, _tiny(box_activation=activation, freeze_stages=0))
    head = model.head.regression_head.bbox_reg
    with torch.no_grad():
        head.bias.fill_(-6.0)
    model.train()
    images = [torch.rand(3, 64, 64) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([1])}] * 2
    sum(model(images, targets).values()).backward()
    features = list(model.backbone(torch.rand(1, 3, 64, 64)).values())
    distances, _ = model.head.regression_head(features)
    if activation == "relu":
        assert head.weight.grad.abs().sum() == 0 and head.bias.grad.abs().sum() == 0
        assert torch.all(distances == 0)
    else:
        assert head.bias.grad.abs().sum() > 0 and head.weight.grad.abs().sum() > 0
        assert torch.all(distances > 0)


def test_a_version_saved_before_the_box_activation_loads_with_relu_and_a_new_one_with_its_own(tmp_path):
    examples = _examples(12)
    mask = [i >= 10 for i in range(12)]
    for activation in ("relu", "softplus"):
        out = tmp_path / activation
        fit_detector(examples, mask, LABELS, _tiny(epochs=1, box_activation=activation), out_dir=out)
        meta = json.loads((out / "model.json").read_text())
        assert meta["config"]["box_activation"] == activation
        loaded = DetectionPredictor.load(out)
        head = loaded.model.head.regression_head.bbox_reg
        assert isinstance(head, detector.SoftplusConv2d) == (activation == "softplus")
        answers = loaded.predict([examples[10].image])
        if activation == "relu":  # as versions were saved before the field existed
            meta["config"].pop("box_activation")
            (out / "model.json").write_text(json.dumps(meta))
            old = DetectionPredictor.load(out)
            assert type(old.model.head.regression_head.bbox_reg) is nn.Conv2d
            assert old.predict([examples[10].image])[0]["objects"] == answers[0]["objects"]


def test_an_unknown_box_activation_is_refused():
    with pytest.raises(ValueError, match="box_activation"):
        build_detector(2, _tiny(box_activation="tanh"))


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
    for key in ("freeze_stages", "val_fraction", "min_val_images", "patience", "min_epochs", "min_gain"):
        meta["config"].pop(key)
    meta["config"].pop("decay_epochs")
    for key in ("feature_views", "feature_cache_mb"):
        meta["config"].pop(key)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    old = DetectionPredictor.load(tmp_path)
    assert old.predict([examples[10].image])[0]["objects"] == answers[0]["objects"]


def test_a_gain_under_the_minimum_keeps_the_better_weights_but_does_not_reset_the_patience():
    model = nn.Linear(1, 1)
    small_steps = (0.50, 0.51, 0.515, 0.52)
    stopping = _EarlyStopping(DetectConfig(patience=2, min_epochs=1, min_gain=0.02, decay_epochs=0))
    for epoch, score in enumerate(small_steps[:3], start=1):
        model.weight.data.fill_(epoch)
        stopping.update(epoch, score, model)
    # Two epochs without a gain of 0.02 over 0.50: the rate drops, the best epoch's weights return.
    assert stopping.dropped and stopping.lr == DetectConfig().lr * 0.1
    assert stopping.best == 0.515 and stopping.best_epoch == 3 and model.weight.item() == 3
    assert stopping.update(4, 0.52, model) == ""
    assert stopping.update(5, 0.53, model) == "improvement"  # 0.53 - 0.515 < 0.02
    assert stopping.best_epoch == 5

    without = _EarlyStopping(DetectConfig(patience=2, min_epochs=1, min_gain=0.0, decay_epochs=0))
    for epoch, score in enumerate(small_steps, start=1):
        assert without.update(epoch, score, model) == ""
    assert not without.dropped


def test_with_a_decaying_schedule_the_validation_keeps_the_best_weights_and_stops_only_on_a_perfect_score():
    model = nn.Linear(1, 1)
    stopping = _EarlyStopping(DetectConfig(patience=1, min_epochs=3, decay_epochs=10))
    # Scores that would drop the rate and stop the plateau rule (patience 1) long before.
    for epoch, score in enumerate((0.50, 0.70, 0.40, 0.40, 0.65, 0.30), start=1):
        model.weight.data.fill_(epoch)
        assert stopping.update(epoch, score, model) == ""
    assert not stopping.dropped and stopping.lr == DetectConfig().lr
    stopping.restore(model)
    assert stopping.best == 0.70 and stopping.best_epoch == 2 and model.weight.item() == 2

    early = _EarlyStopping(DetectConfig(min_epochs=3, decay_epochs=10))
    assert early.update(1, 1.0, model) == ""  # perfect, but before min_epochs
    assert early.update(2, 0.9, model) == ""
    assert early.update(3, 0.9, model) == "perfect"  # the best score so far is perfect


def test_losses_from_cached_frozen_features_equal_the_whole_nets_and_so_do_their_gradients():
    torch.manual_seed(0)
    model = build_detector(2, _tiny(freeze_stages=3))
    model.train()
    images = [torch.rand(3, 64, 64) for _ in range(2)]
    targets = [
        {"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([1])},
        {
            "boxes": torch.tensor([[20.0, 4.0, 60.0, 30.0], [2.0, 40.0, 30.0, 62.0]]),
            "labels": torch.tensor([2, 1]),
        },
    ]
    whole = model(images, targets)
    whole_grads = torch.autograd.grad(sum(whole.values()), [p for p in model.parameters() if p.requires_grad])

    image_list, moved = model.transform(images, targets)
    with torch.no_grad():
        x, taken = _frozen_forward(model.backbone.body, image_list.tensors, 3)
    split = _losses_from_frozen(model, 3, x, taken, image_list, moved)
    split_grads = torch.autograd.grad(sum(split.values()), [p for p in model.parameters() if p.requires_grad])
    assert whole.keys() == split.keys()
    for key in whole:
        torch.testing.assert_close(split[key], whole[key])
    for a, b in zip(whole_grads, split_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_cached_views_are_drawn_once_per_image_and_view_and_train_the_same_weights_until_reused(
    tmp_path, monkeypatch
):
    examples = _examples(24)
    mask = [i >= 20 for i in range(24)]  # 20 training images, batches of 4, no validation slice
    calls = []
    augment = detector.augment
    monkeypatch.setattr(detector, "augment", lambda *a: calls.append(1) or augment(*a))

    one_epoch = {"epochs": 1, "freeze_stages": 3, "min_val_images": 100}
    fit_detector(examples, mask, LABELS, _tiny(**one_epoch), out_dir=tmp_path / "plain")
    fit_detector(examples, mask, LABELS, _tiny(**one_epoch, feature_views=2), out_dir=tmp_path / "cached")
    plain = load_file(tmp_path / "plain" / "model.safetensors")
    cached = load_file(tmp_path / "cached" / "model.safetensors")
    for key in plain:
        torch.testing.assert_close(cached[key], plain[key])

    calls.clear()
    config = _tiny(epochs=4, freeze_stages=3, min_val_images=100, feature_views=2)
    metrics = fit_detector(examples, mask, LABELS, config).metrics
    assert len(calls) == 20 * 2  # epochs 3 and 4 reuse the views of epochs 1 and 2
    assert metrics["feature_views"] == 2 and metrics["epochs"] == 4
    assert all(row["loss"] == row["loss"] for row in metrics["history"])  # no NaN


def test_a_set_still_far_from_learnt_stretches_its_cosine_to_the_epochs_allowed():
    examples = _examples(24)
    mask = [i >= 20 for i in range(24)]
    # lr 0: the validation score stays under any level, so after the first epoch the 2-epoch
    # cosine is stretched to the 4 epochs allowed; off (0), the 2 epochs run as planned.
    base = dict(lr=0.0, val_fraction=0.3, min_val_images=4, decay_epochs=2, epochs=4, extend_after=1)
    stretched = fit_detector(examples, mask, LABELS, _tiny(**base, extend_below=0.5)).metrics
    assert (stretched["epochs"], stretched["stopped"]) == (4, "epochs")
    assert stretched["history"][0]["extended_to"] == 4
    plain = fit_detector(examples, mask, LABELS, _tiny(**base, extend_below=0.0)).metrics
    assert plain["epochs"] == 2 and "extended_to" not in plain["history"][0]


def test_the_progress_shown_never_goes_back_when_the_plan_grows():
    examples = _examples(24)
    mask = [i >= 20 for i in range(24)]
    # Epoch 1 of a 2-epoch plan is 47.5 % done; after epoch 2 the plan grows to 5 epochs, where
    # epoch 2 would be 38 %.
    config = _tiny(
        lr=0.0, val_fraction=0.3, min_val_images=4, decay_epochs=2, epochs=5, extend_after=2, extend_below=0.5
    )
    reported: list[float] = []
    record = reported.append
    metrics = fit_detector(examples, mask, LABELS, config, progress=lambda p: record(p["percent"])).metrics
    assert metrics["epochs"] == 5 and metrics["history"][1]["extended_to"] == 5, metrics["history"]
    assert reported == sorted(reported) and reported[0] == 47.5 and reported[-1] == 99.0, reported


def test_each_test_images_evaluation_names_that_image_and_its_own_boxes():
    """The evaluation lists the test images worst first; each record's ``index`` is the example its
    true boxes are (in that example's frame: the images here have several sizes)."""
    examples = _examples(16, seed=8) + _examples(8, seed=9, size=(120, 72))
    mask = [i % 3 == 0 for i in range(24)]
    result = fit_detector(examples, mask, LABELS, _tiny(epochs=2))
    records = result.predictions
    assert sorted(r["index"] for r in records) == [i for i in range(24) if mask[i]]
    errors = [r["false_positives"] + r["false_negatives"] for r in records]
    assert errors == sorted(errors, reverse=True) and len(set(errors)) > 1, "worst first, not in order"
    for record in records:
        example = examples[record["index"]]
        assert [b["bound_box"] for b in record["true"]] == [[round(v) for v in box] for box in example.boxes]
        assert [b["label"] for b in record["true"]] == example.labels
