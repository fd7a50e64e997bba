"""Fit a model version: a small AutoML that tries candidates and keeps the best on validation.

``fit`` reads top to bottom (``_fit``, then ``_auto``):

1. Check the inputs; gather the training side: decode its images once per input size into uint8
   caches, standardise regression targets.
2. With a fixed architecture (``config.architecture`` a timm name) train that one net on the
   whole training side, as the user asked (``candidates.fixed``).
3. With ``architecture="auto"`` carve a validation slice from the training side (stratified,
   seeded) and estimate each candidate, in this order, as long as the time budget allows
   (``search``):
   - photos (images above SMALL_IMAGE_SIDE): one logistic (or ridge) head on the frozen features
     of several ImageNet EfficientNet-Lites side by side (``photo``, ``multi``), its backbones,
     regularisation and mirror handling chosen, and its score estimated, by k-fold
     cross-validation over the whole training side;
   - small images: linear probes on lite0 (last layer, middle stages with a kernel head),
     regularisation and mirrored copies chosen by k-fold cross-validation (``probe``), and a
     small net from scratch at the images' own size;
   - fine-tuning the pretrained net at ImageNet-like scale (never below 128 px).
   Each other candidate is scored on the validation slice. Choose (``selection``): photos, the
   cross-validated probe stays unless another beats it on the slice's own images by more than
   the paired noise; small images, the best slice score wins, ties go by the validation log loss
   when the slice holds at least 30 images, then by kind: probe, fine-tune, scratch, blend. The
   winner is refitted on the whole training side.
4. Only then is the test side read: the winner is evaluated exactly as the predictor runs it
   and saved with its metrics, the candidates tried and the training history.

Every candidate ends in a linear layer (or a blend of such nets), so the served model is one
forward pass whatever wins; ``config.final_refit`` fits it once more on every labelled image after
the test side was scored. No Django here.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ml import artifacts, weights
from ml.config import AUTO_ARCHITECTURE, MAX_INPUT_SIZE, TASK_TYPES, TrainConfig, finite
from ml.data import image_shorter_sides, is_grey
from ml.images import ImageInput
from ml.models import postprocess
from ml.recognition import blend, metrics
from ml.recognition.candidates import fixed
from ml.recognition.context import (
    Budget,
    Candidate,
    Context,
    Images,
    ProgressFn,
    check_targets,
    target_tensor,
)
from ml.recognition.search import begin
from ml.recognition.selection import choose_winner, refit_winner
from ml.recognition.serving import write_fp32
from ml.recognition.train import forward_outputs, resolve_device, seed_everything
from ml.threads import torch_threads

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    metrics: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    # One dict per test item that could be read: index (into items), true, predicted, probs.
    predictions: list[dict[str, Any]] = field(default_factory=list)
    config: TrainConfig | None = None  # resolved: architecture, input_size, lr and device filled in
    out_dir: str | None = None


def fit(
    items: Sequence[tuple[ImageInput, Any]],
    test_mask: Sequence[bool],
    labels: Sequence[dict],
    task_type: str,
    config: TrainConfig | None = None,
    out_dir: str | None = None,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train one version on ``items`` and save it to ``out_dir``.

    ``items`` are (image, target) pairs; ``test_mask`` marks the test side (the caller
    splits, see ml.split); the test side is read only after the model is chosen. Targets: a
    label index (multi_class), a list of label indices (multi_label, may be empty), or a float
    (regression). ``labels`` ({"id", "name"}) fix the output order. Unreadable images are
    skipped with a warning. Returns metrics on the test side (with the candidates tried),
    warnings, and one prediction per test item; writes model.safetensors and model.json when
    ``out_dir`` is given. ``config.time_budget_s`` bounds the whole call. It runs on
    ``config.num_threads`` torch threads (one per core when unset), whatever the process had.
    """
    with torch_threads(config.num_threads if config else None):
        return _fit(items, test_mask, labels, task_type, config, out_dir, progress)


def _fit(items, test_mask, labels, task_type, config, out_dir, progress) -> TrainResult:
    """The plan: gather the training side, find the winner on it, then score it on the test side
    (read for the first time), refit it on everything if asked, and save it."""
    started = time.monotonic()
    config, labels = _checked(items, test_mask, labels, task_type, config)
    ctx = _gather_training_side(items, test_mask, labels, task_type, config, started, progress)
    if config.architecture == AUTO_ARCHITECTURE:
        winner, tried = _auto(ctx)
    else:
        winner = fixed(ctx)
        tried = [winner]
    model = _finalized(winner)
    config = winner.config or config
    test = _score_test_side(ctx, winner, model, items, test_mask, labels)
    result_metrics = _version_metrics(ctx, winner, tried, config, test, started)
    if config.final_refit:
        result_metrics["final_refit"] = _final_refit(ctx, winner, test)
    result_metrics = finite(result_metrics)
    predictions = finite(test.predictions)
    warnings = sorted(ctx.images.warnings + test.images.warnings, key=_item_number) + ctx.warnings
    if out_dir is not None:
        _save(out_dir, ctx, winner, model, config, labels, test.thresholds, result_metrics, warnings)
        result_metrics["serving"] = _serve(out_dir, config)
        artifacts.update_meta(out_dir, {"serving": result_metrics["serving"], "metrics": result_metrics})
    return TrainResult(
        metrics=result_metrics,
        warnings=warnings,
        predictions=predictions,
        config=config,
        out_dir=str(out_dir) if out_dir is not None else None,
    )


def _auto(ctx: Context) -> tuple[Candidate, list[Candidate]]:
    """Try candidates within the budget, choose one on the validation slice and make it ready to
    serve; return (winner, all tried)."""
    search = begin(ctx)
    # Estimate each candidate. The photo probe reads lite0's and lite2's last layers itself, so
    # their single probes are not tried beside it.
    photo = search.photo_probe()
    if photo is None:
        search.lite0_probe()
    kept = search.reserve
    search.scratch()
    if photo is None:
        search.large_probe()
    search.finetune()
    search.reserve = kept  # what was kept back to retrain the net from scratch is the refit's now
    search.scratch_if_nothing_trained()
    search.blends()
    # Choose; refit the winner on the whole training side.
    winner = choose_winner(ctx, search.tried, photo, search.val_pos, search.use_loss)
    refit_winner(ctx, winner, search.fit_pos, search.val_pos, search.left)
    search.free_all_but(winner)
    return winner, search.tried


# --------------------------------------------------------------------------- the steps of fit


def _checked(items, test_mask, labels, task_type, config) -> tuple[TrainConfig, list[dict]]:
    """A validated copy of ``config`` and the labels as plain strings; ValueError for bad input."""
    config = dataclasses.replace(config or TrainConfig())
    config.validate()
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {TASK_TYPES}")
    if len(test_mask) != len(items):
        raise ValueError("test_mask must have one entry per item")
    labels = [{"id": str(label["id"]), "name": str(label["name"])} for label in labels]
    if task_type != "regression" and not labels:
        raise ValueError("classification needs at least one label")
    check_targets(items, task_type, len(labels))
    return config, labels


def _gather_training_side(items, test_mask, labels, task_type, config, started, progress) -> Context:
    """The context every candidate works in: the training side's images (decoded apart from the
    test side's: nothing of the test side is read before the winner is fixed), its targets, the
    budget and the device (written back into ``config``)."""
    num_outputs = 1 if task_type == "regression" else len(labels)
    budget = Budget(started, config.time_budget_s)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    config.device = str(device)
    train_items = [i for i, test in enumerate(test_mask) if not test]
    images = Images([items[i][0] for i in train_items], train_items)
    sides = image_shorter_sides(images.images)
    median_side = float(np.median(sides)) if sides else float(MAX_INPUT_SIZE)
    # Decode once at a small size: which images are readable, and are they grey?
    grey = is_grey(images.cache(32, "bicubic"))
    train_ok = [train_items[p] for p in images.ok or []]
    if not train_ok:
        raise ValueError("no readable training images")
    y_train = target_tensor([items[i][1] for i in train_ok], task_type, len(labels))
    y_train, target_mean, target_std = _standardised(y_train, task_type)
    return Context(
        config=config,
        task_type=task_type,
        num_outputs=num_outputs,
        images=images,
        y_train=y_train,
        target_std=target_std or 1.0,
        target_mean=target_mean,
        device=device,
        budget=budget,
        flip=config.flip if config.flip is not None else not grey,
        grey=grey,
        median_side=median_side,
        progress=progress,
        n_test=len(test_mask) - len(train_items),
    )


def _standardised(y: torch.Tensor, task_type: str) -> tuple[torch.Tensor, float | None, float | None]:
    """(targets, mean, std): regression targets standardised, so the loss scale (and so the
    learning rate) is independent of the units; the stats are saved so predictions come back in
    target units. Other targets as they are, with None."""
    if task_type != "regression":
        return y, None, None
    mean = float(y.mean())
    std = float(y.std()) if len(y) > 1 else 0.0
    std = std if std > 1e-8 else 1.0
    return (y - mean) / std, mean, std


def _finalized(winner: Candidate) -> nn.Module:
    """The winner's net to serve, a probe's head refitted on the whole training side first."""
    if winner.finalize is not None:
        winner.finalize()
    if winner.model is None:  # cannot happen: _auto and fixed only return candidates that trained
        raise RuntimeError(f"candidate {winner.name} has no model")
    return winner.model


@dataclass
class _TestSide:
    """The test side, read once the winner is fixed, and what the winner made of it."""

    images: Images
    cache: torch.Tensor  # the readable test images as the predictor gets them, uint8 (N, 3, S, S)
    indices: list[int]  # the readable test items, positions in ``items``
    targets: list  # their targets as given
    thresholds: list[float] | None
    metrics: dict[str, Any]
    predictions: list[dict[str, Any]]


def _score_test_side(
    ctx: Context, winner: Candidate, model: nn.Module, items, test_mask, labels
) -> _TestSide:
    """The winner on the test side, exactly as the predictor runs it (fp32, eval)."""
    test_items = [i for i, test in enumerate(test_mask) if test]
    prep = winner.preprocessing
    tests = Images([items[i][0] for i in test_items], test_items)
    test_cache = tests.cache(winner.input_size, prep["interpolation"], prep.get("resize", "crop"))
    test_ok = [test_items[p] for p in tests.ok or []]
    raw_test = [items[i][1] for i in test_ok]
    logits, _ = forward_outputs(model, test_cache, mean=prep["mean"], std=prep["std"])
    thresholds = winner.thresholds if ctx.task_type == "multi_label" else None
    if ctx.task_type == "multi_label" and thresholds is None:
        thresholds = [metrics.DEFAULT_THRESHOLD] * ctx.num_outputs
    target_mean, target_std = ctx.target_units()
    result, predictions = _test_metrics(
        ctx.task_type, logits, raw_test, test_ok, labels, thresholds, target_mean, target_std
    )
    return _TestSide(tests, test_cache, test_ok, raw_test, thresholds, result, predictions)


def _test_metrics(task_type, logits, raw_test, indices, labels, thresholds, target_mean, target_std):
    num_outputs = 1 if task_type == "regression" else len(labels)
    predictions: list[dict[str, Any]] = []
    if task_type == "multi_class":
        probs = postprocess(logits, task_type).numpy() if indices else np.zeros((0, num_outputs))
        result = metrics.classification_metrics(probs, raw_test, labels)
        for n, i in enumerate(indices):
            predictions.append(
                {
                    "index": i,
                    "true": int(raw_test[n]),
                    "predicted": int(probs[n].argmax()),
                    "probs": probs[n].tolist(),
                }
            )
    elif task_type == "multi_label":
        probs = postprocess(logits, task_type).numpy() if indices else np.zeros((0, num_outputs))
        truth = target_tensor(raw_test, task_type, num_outputs).numpy()
        result = metrics.multi_label_metrics(probs, truth, labels, thresholds)
        for n, i in enumerate(indices):
            chosen = [j for j in range(num_outputs) if probs[n, j] >= thresholds[j]]
            predictions.append(
                {
                    "index": i,
                    "true": sorted(int(t) for t in raw_test[n]),
                    "predicted": chosen,
                    "probs": probs[n].tolist(),
                }
            )
    else:
        values = postprocess(logits, task_type, target_mean, target_std).numpy() if indices else np.zeros(0)
        truth = np.asarray(raw_test, dtype=np.float64)
        result = metrics.regression_metrics(values, truth)
        for n, i in enumerate(indices):
            predictions.append(
                {"index": i, "true": float(truth[n]), "predicted": float(values[n]), "probs": None}
            )
    return result, predictions


def _version_metrics(
    ctx: Context,
    winner: Candidate,
    tried: list[Candidate],
    config: TrainConfig,
    test: _TestSide,
    started: float,
) -> dict:
    """The test side's metrics with what was trained, how, and what else was tried."""
    history = winner.history
    result_metrics = test.metrics
    result_metrics.update(
        {
            "pretrained": winner.pretrained,
            "architecture": winner.architecture,
            "training_time": round(time.monotonic() - started, 3),
            "time_budget": config.time_budget_s,
            "number_of_training_images": len(ctx.y_train),
            "number_of_testing_images": len(test.indices),
            "epochs": len(history),
            "input_size": winner.input_size,
            "train_loss": history[-1]["loss"] if history else None,
            "selected": winner.name,
            "candidates": [c.summary() for c in tried],
            "validation": ctx.validation_info,
            "history": history,
        }
    )
    return result_metrics


def _final_refit(ctx: Context, winner: Candidate, test: _TestSide) -> dict:
    """Fit the chosen recipe once more on every labelled image (the test side joins the training
    side) after the version was scored; what was done, for the version's metrics."""
    n_train, n_test = len(ctx.y_train), len(test.targets)
    if not n_test:
        return {"done": False, "reason": "no test images to add", "images": n_train}
    if winner.final_refit is None:
        return {"done": False, "reason": f"not available for {winner.kind} candidates", "images": n_train}
    t0 = time.monotonic()
    y_test = target_tensor(test.targets, ctx.task_type, ctx.num_outputs)
    if ctx.task_type == "regression":
        y_test = (y_test - ctx.target_mean) / ctx.target_std
    ctx.report({"stage": "final refit on every labelled image"})
    winner.final_refit(test.images, y_test)
    return {"done": True, "images": n_train + n_test, "seconds": round(time.monotonic() - t0, 2)}


def _serve(out_dir, config: TrainConfig) -> dict:
    """Write the served model.onnx (FP32; the INT8 attempt runs after TRAINED, in a job of its own:
    ml/recognition/serving.py)."""
    try:
        return write_fp32(out_dir, config)
    except Exception as exc:  # the version is trained: serve it with torch rather than fail it
        logger.exception("could not write the served model.onnx")
        return {"runtime": "torch", "precision": "fp32", "reason": f"ONNX export failed: {exc}"[:500]}


def _item_number(warning: str) -> int:
    """Warnings about items in item order (they start with "item N:")."""
    try:
        return int(warning.split(":", 1)[0].split()[-1])
    except ValueError:
        return -1


def _save(
    out_dir,
    ctx: Context,
    winner: Candidate,
    model: nn.Module,
    config: TrainConfig,
    labels: list[dict],
    thresholds: list[float] | None,
    result_metrics: dict,
    warnings: list[str],
) -> None:
    """model.safetensors and model.json: everything a predictor needs to serve the version."""
    prep = winner.preprocessing
    target_mean, target_std = ctx.target_units()
    meta = {
        "architecture": blend.BLEND_ARCHITECTURE if winner.blend_spec else winner.architecture,
        **({"blend": winner.blend_spec} if winner.blend_spec else {}),
        **({"taps": winner.taps_spec} if winner.taps_spec and not winner.blend_spec else {}),
        **({"multi": winner.multi_spec} if winner.multi_spec else {}),
        "input_size": winner.input_size,
        "num_outputs": ctx.num_outputs,
        "mean": prep["mean"],
        "std": prep["std"],
        "interpolation": prep["interpolation"],
        "resize": prep.get("resize", "crop"),
        "task_type": ctx.task_type,
        "labels": labels,
        "thresholds": thresholds,
        "target_mean": target_mean,
        "target_std": target_std,
        "pretrained": winner.pretrained,
        "config": config.to_dict(),
        "metrics": result_metrics,
        "warnings": warnings,
    }
    weights.save_version(out_dir, model, meta)
