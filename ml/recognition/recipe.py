"""Fit a model version: a small AutoML that tries candidates and keeps the best on validation.

``fit`` reads top to bottom:

1. Check the inputs, decode the images once per input size into uint8 caches.
2. With a fixed architecture (``config.architecture`` a timm name) train that one net on the
   whole training side, as the user asked.
3. With ``architecture="auto"`` carve a validation slice from the training side (stratified,
   seeded) and try, in this order, as long as the time budget allows:
   - photos (images above SMALL_IMAGE_SIDE): one logistic (or ridge) head on the frozen features
     of several ImageNet EfficientNet-Lites side by side (``ml.multi``), its backbones,
     regularisation and mirror handling chosen, and its score estimated, by k-fold
     cross-validation over the whole training side;
   - small images: linear probes on lite0 (last layer, middle stages with a kernel head),
     regularisation and mirrored copies chosen by k-fold cross-validation (``ml.probe``), and a
     small net from scratch at the images' own size;
   - fine-tuning the pretrained net at ImageNet-like scale (never below 128 px).
   Each other candidate is scored on the validation slice. Photos: the cross-validated probe
   stays unless another beats it on the slice's own images by more than the paired noise. Small
   images: the best slice score wins; ties go by the validation log loss when the slice holds at
   least 30 images, then by kind: probe, fine-tune, scratch, blend. The winner is refitted on the
   whole training side.
4. Only then is the test side read: the winner is evaluated exactly as the predictor runs it
   and saved with its metrics, the candidates tried and the training history.

Every candidate ends in a linear layer (or a blend of such nets), so the served model is one
forward pass whatever wins; ``config.final_refit`` fits it once more on every labelled image after
the test side was scored. No Django here.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ml import artifacts
from ml.config import (
    AUTO_ARCHITECTURE,
    DEFAULT_CANDIDATES,
    MAX_INPUT_SIZE,
    MIN_PRETRAINED_INPUT_SIZE,
    TASK_TYPES,
    TrainConfig,
    finite,
)
from ml.data import ImageInput, auto_input_size, build_cache, image_shorter_sides, is_grey
from ml.models import build_model, data_config, postprocess
from ml.recognition import blend, kernel, metrics, multi, probe, taps
from ml.recognition.train import forward_outputs, resolve_device, seed_everything, train_net
from ml.split import stratified_split
from ml.threads import torch_threads

logger = logging.getLogger(__name__)

ProgressFn = Callable[[dict], None]

PROBE_ARCHITECTURES = ("tf_efficientnet_lite0", "tf_efficientnet_lite2")
SCRATCH_ARCHITECTURE = "resnet10t"
FINETUNE_ARCHITECTURE = "tf_efficientnet_lite0"
# Images whose median shorter side is at most this are "small": a net from scratch at their
# own size is a candidate (scans, digits, icons).
SMALL_IMAGE_SIDE = 64
# Prior forward speed (images/s at 224 px, 2 CPU cores) per architecture, used to plan before
# anything was measured; replaced by the measured speed once a probe ran. Cost ~ side^2.
PRIOR_FORWARD_IMAGES_PER_S = {"tf_efficientnet_lite0": 45.0, "tf_efficientnet_lite2": 20.0}
NATIVE_SIZE = {"tf_efficientnet_lite0": 224, "tf_efficientnet_lite1": 240, "tf_efficientnet_lite2": 260}
PROBE_SIZES = (260, 224, 192, 160, 128)
# The lite0 probe's largest size on small images when its middle-layer variant runs: upscaled
# scans hold no more detail at 224 px, and the middle stages read them as well at 128 (Fashion-
# MNIST slices apart from the benchmark's: 0.875 at 128, 0.874 at 224), at a third of the cost,
# which goes to the net from scratch.
SMALL_PROBE_SIZE = 128
# The kinds read from a net's middle stages (ml/taps.py): a linear head, a kernel head.
MID_KINDS = frozenset({"probe_mid", "probe_kernel"})
# Equal validation scores (and, on a large enough slice, equal log loss): the first kind here
# wins, a blend always last. Small grey images used to put the net from scratch first, a rule
# read off the digit benchmark's own test side; re-derived on two-class Fashion-MNIST sets of
# 2 x 25 from its test file, which no benchmark scores (bench/dev_small_grey.py), the probe
# generalised best on 4 of 5 pairs (mean 0.911 against the net's 0.869), so it goes first there too.
TIE_ORDER = ("probe_multi", "probe", "finetune", "scratch", "blend")
# The photo candidate (``probe_multi``, images larger than SMALL_IMAGE_SIDE): backbones whose
# frozen features, each at its native size, one linear head reads side by side. When the budget
# cannot pay for all of them the last ones are left out. Chosen by 5-fold cross-validation within
# the photo benchmark's training sides (bench/dev_photos.py; BENCHMARKS.md), mean of three: centre-
# cropped, lite0 + lite2 with mirror averaging 0.749, lite0 + lite1 + lite2 0.749 (a third more
# work), lite2 alone 0.721; squashed, lite2 alone 0.762 and lite0 + lite2 0.737. Which of the two
# sets a task keeps is left to its own cross-validation (``_probe_multi``).
MULTI_ARCHITECTURES = ("tf_efficientnet_lite2", "tf_efficientnet_lite0")
# ... reading the whole photo squashed to the square, not its centre crop (lite2: 0.762 against
# 0.721 above; the benchmark's photos are 307 x 172, a centre crop drops 44 % of each).
MULTI_RESIZE = "squash"
# Share of the budget left the photo candidate's feature extraction may plan for.
MULTI_SHARE = 0.75
# Below this many training images the probes' heads are chosen and scored by k-fold cross-
# validation over the whole training side with this many folds (3 above it).
SMALL_DATA = 2000
SMALL_DATA_FOLDS = 5
# A candidate scored on the validation slice replaces a cross-validated one only when its paired
# gain on the slice's images is this many standard errors above zero (about 97.7 % one-sided).
PAIRED_Z = 2.0
# Below this many validation images the log loss does not break ties: on a slice this small it
# only says which model is the most confident, and the probes' confident heads won every tie.
MIN_VALIDATION_FOR_LOSS = 30
# One training step (forward + backward) costs about this many forward passes.
TRAIN_COST_FACTOR = 3.5
MIN_FINETUNE_EPOCHS = 3
# Seconds kept back from the budget for the test-side evaluation and saving.
RESERVE_S = 3.0
# Images per feature-extraction call: the budget is checked between calls.
FEATURE_CHUNK = 64
# Images and side of the speed check run before planning (lite0 forward, a fraction of a second).
CALIBRATION_IMAGES = 16
CALIBRATION_SIZE = 128


@dataclass
class TrainResult:
    metrics: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    # One dict per test item that could be read: index (into items), true, predicted, probs.
    predictions: list[dict[str, Any]] = field(default_factory=list)
    config: TrainConfig | None = None  # resolved: architecture, input_size, lr and device filled in
    out_dir: str | None = None


@dataclass(eq=False)
class Candidate:
    """One model tried: where it came from, its validation score and the net to serve if it wins."""

    name: str
    kind: str  # probe | scratch | finetune | fixed | blend
    architecture: str
    input_size: int
    model: nn.Module | None = None
    pretrained: str | None = None
    preprocessing: dict = field(default_factory=dict)  # mean, std, interpolation
    score: float | None = None
    nll: float | None = None  # validation log loss (MSE for regression): breaks ties of ``score``
    thresholds: list[float] | None = None
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    hyper: dict = field(default_factory=dict)
    config: TrainConfig | None = None
    finalize: Callable[[], None] | None = None  # refit on the whole training side (probes)
    note: str | None = None
    # Validation outputs (probabilities, or standardised values for regression): blends mix them.
    val_outputs: np.ndarray | None = None
    # (size, interpolation) of the cache this net's input is average-pooled from (a net from
    # scratch trained on the probe's cache), so it can be served blended with the probe.
    source: tuple[int, str] | None = None
    members: list[Candidate] = field(default_factory=list)  # a blend's nets, in input order
    blend_spec: dict | None = None  # model.json's "blend" once the served module is a Blend
    taps_spec: dict | None = None  # model.json's "taps": a probe on middle layers (ml/taps.py)
    multi_spec: dict | None = None  # model.json's "multi": the photo candidate (ml/multi.py)
    # Fit once more on every labelled image after the test side was scored (TrainConfig.final_refit):
    # called with the test side's Images and their targets (as y_train is, standardised).
    final_refit: Callable[[Images, torch.Tensor], None] | None = None
    # Out-of-fold outputs over the whole training side (a cross-validated candidate).
    oof: np.ndarray | None = None

    def summary(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "architecture": self.architecture,
            "input_size": self.input_size,
            "validation_score": self.score,
            "validation_loss": self.nll,
            "seconds": round(self.seconds, 2),
            "epochs": len(self.history) or None,
            **({"hyper": self.hyper} if self.hyper else {}),
            **({"members": [m.name for m in self.members]} if self.members else {}),
            **({"note": self.note} if self.note else {}),
        }


def _check_targets(items: Sequence[tuple[ImageInput, Any]], task_type: str, num_labels: int) -> None:
    for i, (_, target) in enumerate(items):
        if task_type == "multi_class":
            ok = isinstance(target, (int, np.integer)) and 0 <= int(target) < num_labels
        elif task_type == "multi_label":
            ok = isinstance(target, (list, tuple)) and all(
                isinstance(t, (int, np.integer)) and 0 <= int(t) < num_labels for t in target
            )
        else:
            ok = isinstance(target, (int, float, np.number)) and math.isfinite(float(target))
        if not ok:
            raise ValueError(f"item {i}: invalid target {target!r} for {task_type}")


def _target_tensor(targets: Sequence[Any], task_type: str, num_labels: int) -> torch.Tensor:
    if task_type == "multi_class":
        return torch.tensor([int(t) for t in targets], dtype=torch.long)
    if task_type == "multi_label":
        y = torch.zeros((len(targets), num_labels), dtype=torch.float32)
        for i, t in enumerate(targets):
            for j in t:
                y[i, int(j)] = 1.0
        return y
    return torch.tensor([float(t) for t in targets], dtype=torch.float32)


def _strata(task_type: str, targets: Sequence[Any]) -> list:
    """What the validation split is stratified by: the class, the label set, a value quintile."""
    if task_type == "multi_class":
        return [int(t) for t in targets]
    if task_type == "multi_label":
        return [tuple(sorted(int(j) for j in t)) for t in targets]
    values = np.asarray(targets, dtype=np.float64)
    ranks = values.argsort(kind="stable").argsort(kind="stable")
    bins = max(1, min(5, len(values) // 5))
    return [int(r * bins // max(len(values), 1)) for r in ranks]


class Images:
    """One side's readable images, decoded once per (size, interpolation) into uint8 caches.

    ``ok`` (positions in ``images``) is fixed by the first decode; every cache has one row per
    ``ok`` image, in that order. ``names`` are the item numbers warnings use.
    """

    def __init__(self, images: Sequence[ImageInput], names: Sequence[int]):
        self.images = images
        self.names = names
        self.ok: list[int] | None = None
        self.warnings: list[str] = []
        self._caches: dict[tuple[int, str], torch.Tensor] = {}

    def cache(self, size: int, interpolation: str, resize: str = "crop") -> torch.Tensor:
        key = (size, interpolation) if resize == "crop" else (size, f"{interpolation}:{resize}")
        if key not in self._caches:
            if self.ok is None:
                cache, ok, warnings = build_cache(
                    self.images, size, interpolation, names=self.names, resize=resize
                )
                self.ok, self.warnings = ok, warnings
            else:
                cache, ok, _ = build_cache(
                    [self.images[i] for i in self.ok], size, interpolation, resize=resize
                )
                if len(ok) != len(self.ok):  # a file changed under us: fail, never misalign labels
                    raise ValueError("an image that decoded before could not be decoded again")
            self._store(key, cache)
        return self._caches[key]

    def _store(self, key: tuple[int, str], cache: torch.Tensor) -> None:
        # A few sizes at most are alive at once: drop the oldest beyond three.
        if len(self._caches) >= 3:
            self._caches.pop(next(iter(self._caches)))
        self._caches[key] = cache

    def pooled(self, source: tuple[int, str], size: int) -> torch.Tensor:
        """The ``source`` cache average-pooled to ``size`` (a whole factor), as a Blend member sees
        it at serving (rounded back to uint8: at most half a grey level apart)."""
        key = (size, f"pool{source[0]}:{source[1]}")
        if key not in self._caches:
            big = self.cache(*source)
            factor = source[0] // size
            rows = [
                torch.nn.functional.avg_pool2d(big[i : i + 256].float(), factor).round_().to(torch.uint8)
                for i in range(0, big.shape[0], 256)
            ]
            self._store(key, torch.cat(rows) if rows else big[:, :, :size, :size].clone())
        return self._caches[key]


class _Joined(Images):
    """The training side followed by the test side, as one side: what a final refit learns from."""

    def __init__(self, first: Images, second: Images):
        super().__init__([], [])
        self.parts = (first, second)

    def cache(self, size: int, interpolation: str, resize: str = "crop") -> torch.Tensor:
        return torch.cat([part.cache(size, interpolation, resize) for part in self.parts])

    def pooled(self, source: tuple[int, str], size: int) -> torch.Tensor:
        return torch.cat([part.pooled(source, size) for part in self.parts])


class Budget:
    """The wall clock of one fit: ``left()`` seconds until the deadline (inf without one)."""

    def __init__(self, started: float, seconds: float | None):
        self.started = started
        self.deadline = started + seconds if seconds else None

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    def fraction(self) -> float:
        if self.deadline is None:
            return 0.0
        return min(1.0, (time.monotonic() - self.started) / max(self.deadline - self.started, 1e-6))


def pretrained_input_size(median_side: float, architecture: str) -> int:
    """Input side for a pretrained net: the images' own scale, but within [128, native]."""
    native = NATIVE_SIZE.get(architecture, MAX_INPUT_SIZE)
    side = 32 * round(max(median_side, MIN_PRETRAINED_INPUT_SIZE) / 32)
    return int(min(max(side, MIN_PRETRAINED_INPUT_SIZE), native))


# --------------------------------------------------------------------------- fit


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
    started = time.monotonic()
    config = dataclasses.replace(config or TrainConfig())
    config.validate()
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {TASK_TYPES}")
    if len(test_mask) != len(items):
        raise ValueError("test_mask must have one entry per item")
    labels = [{"id": str(label["id"]), "name": str(label["name"])} for label in labels]
    if task_type != "regression" and not labels:
        raise ValueError("classification needs at least one label")
    _check_targets(items, task_type, len(labels))
    num_outputs = 1 if task_type == "regression" else len(labels)
    budget = Budget(started, config.time_budget_s)

    seed_everything(config.seed)
    device = resolve_device(config.device)
    config.device = str(device)
    # The two sides are decoded apart: nothing of the test side is read before the winner is fixed.
    train_items = [i for i, test in enumerate(test_mask) if not test]
    test_items = [i for i, test in enumerate(test_mask) if test]
    images = Images([items[i][0] for i in train_items], train_items)
    sides = image_shorter_sides(images.images)
    median_side = float(np.median(sides)) if sides else float(MAX_INPUT_SIZE)
    # Decode once at a small size: which images are readable, and are they grey?
    grey = is_grey(images.cache(32, "bicubic"))
    train_ok = [train_items[p] for p in images.ok or []]
    if not train_ok:
        raise ValueError("no readable training images")
    flip = config.flip if config.flip is not None else not grey

    raw_train = [items[i][1] for i in train_ok]
    y_train = _target_tensor(raw_train, task_type, len(labels))
    target_mean = target_std = None
    if task_type == "regression":
        # Standardised targets keep the loss scale (and so the learning rate) independent
        # of the units; the stats are saved so predictions come back in target units.
        target_mean = float(y_train.mean())
        target_std = float(y_train.std()) if len(y_train) > 1 else 0.0
        target_std = target_std if target_std > 1e-8 else 1.0
        y_train = (y_train - target_mean) / target_std

    ctx = _Context(
        config=config,
        task_type=task_type,
        num_outputs=num_outputs,
        images=images,
        y_train=y_train,
        target_std=target_std or 1.0,
        device=device,
        budget=budget,
        flip=flip,
        grey=grey,
        median_side=median_side,
        progress=progress,
        n_test=len(test_items),
    )
    if config.architecture == AUTO_ARCHITECTURE:
        winner, tried = _auto(ctx)
    else:
        winner = _fixed(ctx)
        tried = [winner]
    if winner.finalize is not None:
        winner.finalize()
    model = winner.model
    if model is None:  # cannot happen: _auto and _fixed only return candidates that trained
        raise RuntimeError(f"candidate {winner.name} has no model")
    config = winner.config or config

    # ---- the test side, read for the first time: exactly what the predictor does (fp32, eval)
    prep = winner.preprocessing
    tests = Images([items[i][0] for i in test_items], test_items)
    test_cache = tests.cache(winner.input_size, prep["interpolation"], prep.get("resize", "crop"))
    test_ok = [test_items[p] for p in tests.ok or []]
    raw_test = [items[i][1] for i in test_ok]
    logits, _ = forward_outputs(model, test_cache, mean=prep["mean"], std=prep["std"])
    thresholds = winner.thresholds if task_type == "multi_label" else None
    if task_type == "multi_label" and thresholds is None:
        thresholds = [metrics.DEFAULT_THRESHOLD] * num_outputs
    result_metrics, predictions = _test_metrics(
        task_type, logits, raw_test, test_ok, labels, thresholds, target_mean, target_std
    )
    history = winner.history
    result_metrics.update(
        {
            "pretrained": winner.pretrained,
            "architecture": winner.architecture,
            "training_time": round(time.monotonic() - started, 3),
            "time_budget": config.time_budget_s,
            "number_of_training_images": len(train_ok),
            "number_of_testing_images": len(test_ok),
            "epochs": len(history),
            "input_size": winner.input_size,
            "train_loss": history[-1]["loss"] if history else None,
            "selected": winner.name,
            "candidates": [c.summary() for c in tried],
            "validation": ctx.validation_info,
            "history": history,
        }
    )
    if config.final_refit:
        result_metrics["final_refit"] = _final_refit(ctx, winner, tests, raw_test, target_mean, target_std)
    result_metrics = finite(result_metrics)
    predictions = finite(predictions)
    warnings = sorted(images.warnings + tests.warnings, key=_item_number) + ctx.warnings

    if out_dir is not None:
        meta = {
            "architecture": blend.BLEND_ARCHITECTURE if winner.blend_spec else winner.architecture,
            **({"blend": winner.blend_spec} if winner.blend_spec else {}),
            **({"taps": winner.taps_spec} if winner.taps_spec and not winner.blend_spec else {}),
            **({"multi": winner.multi_spec} if winner.multi_spec else {}),
            "input_size": winner.input_size,
            "num_outputs": num_outputs,
            "mean": prep["mean"],
            "std": prep["std"],
            "interpolation": prep["interpolation"],
            "resize": prep.get("resize", "crop"),
            "task_type": task_type,
            "labels": labels,
            "thresholds": thresholds,
            "target_mean": target_mean,
            "target_std": target_std,
            "pretrained": winner.pretrained,
            "config": config.to_dict(),
            "metrics": result_metrics,
            "warnings": warnings,
        }
        artifacts.save_version(out_dir, model, meta)

    return TrainResult(
        metrics=result_metrics,
        warnings=warnings,
        predictions=predictions,
        config=config,
        out_dir=str(out_dir) if out_dir is not None else None,
    )


def _final_refit(ctx, winner: Candidate, tests: Images, raw_test, target_mean, target_std) -> dict:
    """Fit the chosen recipe once more on every labelled image (the test side joins the training
    side) after the version was scored; what was done, for the version's metrics."""
    n_train, n_test = len(ctx.y_train), len(raw_test)
    if not n_test:
        return {"done": False, "reason": "no test images to add", "images": n_train}
    if winner.final_refit is None:
        return {"done": False, "reason": f"not available for {winner.kind} candidates", "images": n_train}
    t0 = time.monotonic()
    y_test = _target_tensor(raw_test, ctx.task_type, ctx.num_outputs)
    if ctx.task_type == "regression":
        y_test = (y_test - target_mean) / target_std
    ctx.report({"stage": "final refit on every labelled image"})
    winner.final_refit(tests, y_test)
    return {"done": True, "images": n_train + n_test, "seconds": round(time.monotonic() - t0, 2)}


def _item_number(warning: str) -> int:
    """Warnings about items in item order (they start with "item N:")."""
    try:
        return int(warning.split(":", 1)[0].split()[-1])
    except ValueError:
        return -1


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
        truth = _target_tensor(raw_test, task_type, num_outputs).numpy()
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


# --------------------------------------------------------------------------- candidates


@dataclass
class _Context:
    """What every candidate needs: the data, the budget, and where to report."""

    config: TrainConfig
    task_type: str
    num_outputs: int
    images: Images  # the training side only
    y_train: torch.Tensor
    target_std: float
    device: torch.device
    budget: Budget
    flip: bool
    grey: bool
    median_side: float
    progress: ProgressFn | None
    n_test: int
    warnings: list[str] = field(default_factory=list)
    validation_info: dict | None = None
    forward_rate: dict[str, float] = field(default_factory=dict)  # arch -> images/s at 224 px

    fixed: bool = False  # one net: progress follows its schedule, not the whole budget

    def report(self, info: dict) -> None:
        """Pass progress on with ``percent``: of the budget (auto), or of the one net's schedule."""
        if self.progress is None:
            return
        info = dict(info)
        fraction = info.pop("fraction", None)
        if "percent" not in info:
            if self.fixed or self.budget.deadline is None:
                info["percent"] = round(100.0 * (fraction or 0.0), 1)
            else:
                info["percent"] = round(100.0 * self.budget.fraction(), 1)
        self.progress(info)

    def calibrate(self) -> None:
        """Measure this machine's speed now (other work on it included): lite0's forward pass
        on a few random images, so the plan is made with a real figure, not a prior."""
        arch = PROBE_ARCHITECTURES[0]
        model = build_model(dataclasses.replace(self.config, architecture=arch, pretrained="none"), 1).model
        model = model.to(self.device).to(memory_format=torch.channels_last).eval()
        x = torch.zeros((CALIBRATION_IMAGES, 3, CALIBRATION_SIZE, CALIBRATION_SIZE), dtype=torch.uint8)
        forward_outputs(model, x[:2], mean=[0.5] * 3, std=[0.5] * 3)  # warm-up
        t0 = time.monotonic()
        forward_outputs(model, x, mean=[0.5] * 3, std=[0.5] * 3)
        seconds = max(time.monotonic() - t0, 1e-4)
        self.forward_rate[arch] = CALIBRATION_IMAGES * (CALIBRATION_SIZE / 224.0) ** 2 / seconds

    def rate(self, architecture: str) -> float:
        """Forward images/s at 224 px: measured when a probe of this net ran, else a prior
        scaled by what was measured for another net."""
        if architecture in self.forward_rate:
            return self.forward_rate[architecture]
        prior = PRIOR_FORWARD_IMAGES_PER_S.get(architecture, 45.0)
        for known, measured in self.forward_rate.items():
            return prior * measured / PRIOR_FORWARD_IMAGES_PER_S.get(known, 45.0)
        return prior

    def seconds_for(self, architecture: str, size: int, images: float, train: bool = False) -> float:
        per_image = (size / 224.0) ** 2 / self.rate(architecture)
        return images * per_image * (TRAIN_COST_FACTOR if train else 1.0)


def _build(
    ctx: _Context, architecture: str, pretrained: str
) -> tuple[nn.Module, str | None, dict, list[str]]:
    cfg = dataclasses.replace(ctx.config, architecture=architecture, pretrained=pretrained)
    built = build_model(cfg, ctx.num_outputs)
    model = built.model.to(ctx.device).to(memory_format=torch.channels_last)
    return model, built.pretrained, data_config(built.model), built.warnings


def _features(
    ctx: _Context, model: nn.Module, cache: torch.Tensor, dcfg: dict, budget: bool = True
) -> np.ndarray | None:
    """Pooled features (float64 numpy) of a uint8 cache, or None when the budget runs out first
    (checked before each chunk, with the last chunk's time as the estimate of the next, unless
    ``budget`` is False)."""
    chunks = []
    last = 0.0
    for start in range(0, cache.shape[0], FEATURE_CHUNK):
        if budget and ctx.budget.left() < RESERVE_S + last:
            return None
        t0 = time.monotonic()
        _, feats = forward_outputs(
            model,
            cache[start : start + FEATURE_CHUNK],
            mean=dcfg["mean"],
            std=dcfg["std"],
            want_features=True,
        )
        chunks.append(feats.numpy().astype(np.float64))
        last = time.monotonic() - t0
    return np.concatenate(chunks) if chunks else np.zeros((0, 0))


def _probe(
    ctx: _Context, architecture: str, size: int, fit_pos: list[int], val_pos: list[int]
) -> list[Candidate]:
    """Frozen ImageNet features + a linear head chosen by cross-validation on the fit part: one on
    the last layer's pooled features and, where the net has stages to tap (ml/taps.py), one on its
    middle stages pooled on a grid. One forward pass extracts both feature sets."""
    t0 = time.monotonic()
    name = f"probe:{architecture}@{size}"
    candidate = Candidate(name, "probe", architecture, size)
    pretrained = ctx.config.pretrained if ctx.config.pretrained != "none" else "auto"
    model, used, dcfg, _ = _build(ctx, architecture, pretrained)
    if used is None:
        candidate.note = "no pretrained weights available"
        return [candidate]
    kinds = ctx.config.candidates or DEFAULT_CANDIDATES
    stages = taps.default_stages(model) if MID_KINDS & set(kinds) else None
    device = next(model.parameters()).device
    extract = model if stages is None else taps.Taps(model, stages, taps.TAPS_GRID, 1, final=True).to(device)
    cache = ctx.images.cache(size, dcfg["interpolation"])
    t_fwd = time.monotonic()
    feats = _features(ctx, extract, cache, dcfg)
    if feats is None:
        candidate.note = "stopped: out of time budget"
        candidate.seconds = time.monotonic() - t0
        return [candidate]
    ctx.forward_rate[architecture] = len(cache) * (size / 224.0) ** 2 / max(time.monotonic() - t_fwd, 1e-3)
    flipped = None
    if ctx.flip and ctx.budget.left() > 2 * ctx.seconds_for(architecture, size, len(cache)) + RESERVE_S:
        flipped = _features(ctx, extract, cache.flip(-1), dcfg)
    config = dataclasses.replace(
        ctx.config, architecture=architecture, input_size=size, pretrained=pretrained
    )
    shared = time.monotonic() - t0
    split = feats.shape[1] if stages is None else extract.final_dim
    made = []

    def test_features(start: int, stop: int | None, transform=None):
        # The test side's features in the same columns (and kernel map) as the head's: a final refit.
        def extract_test(test_images: Images) -> tuple[np.ndarray, np.ndarray | None]:
            c = test_images.cache(size, dcfg["interpolation"])
            f = _features(ctx, extract, c, dcfg, budget=False)[:, start:stop]
            g = (
                None
                if flipped is None
                else _features(ctx, extract, c.flip(-1), dcfg, budget=False)[:, start:stop]
            )
            if transform is not None:
                f, g = transform(f), (None if g is None else transform(g))
            return f, g

        return extract_test

    if "probe" in kinds or stages is None:
        candidate.model, candidate.pretrained, candidate.preprocessing = model, used, dcfg
        candidate.config = config
        last = feats[:, :split], _cols(flipped, 0, split)
        _fit_head(ctx, candidate, model.get_classifier(), *last, fit_pos, val_pos, test_features(0, split))
        candidate.seconds += shared
        made.append(candidate)
    if stages is None:
        return made
    mid_feats, mid_flipped = feats[:, split:], _cols(flipped, split, None)

    def mid_layers(
        suffix, served: taps.Taps, layer: nn.Linear, x, x_flipped, started: float, extract_test, **hyper
    ):
        # A probe served as the stages it reads and ``layer`` (its head's linear layer).
        mid = Candidate(f"{name}:mid-layers{suffix}", "probe", architecture, size)
        mid.model, mid.pretrained = served.to(device).eval(), used
        mid.preprocessing, mid.config, mid.taps_spec = dcfg, config, taps.spec(served, architecture)
        _fit_head(ctx, mid, layer, x, x_flipped, fit_pos, val_pos, extract_test)
        mid.hyper = {**mid.hyper, **hyper}
        mid.seconds = time.monotonic() - started + shared
        made.append(mid)

    if "probe_mid" in kinds:
        served = taps.Taps(model, stages, taps.TAPS_GRID, ctx.num_outputs)
        mid_layers(
            "", served, served.head, mid_feats, mid_flipped, time.monotonic(), test_features(split, None)
        )
    if "probe_kernel" in kinds and len(fit_pos) > 1:
        started = time.monotonic()
        # The kernel's landmarks and standardisation come from the fit part's features only, so
        # the validation images are scored as unseen ones.
        mapping = kernel.KernelMap(mid_feats[fit_pos], seed=ctx.config.seed)
        served = taps.Taps(model, stages, taps.TAPS_GRID, ctx.num_outputs, kernel=mapping.landmarks)
        mapping.load_into(served.head)
        mapped = mapping.transform(mid_feats), mapping.transform(mid_flipped)
        mid_layers(
            ":rbf",
            served,
            served.head.linear,
            *mapped,
            started,
            test_features(split, None, mapping.transform),
            landmarks=mapping.landmarks,
            gamma=mapping.gamma,
        )
    return made


def _multi_plan(ctx: _Context, seconds: float) -> list[str]:
    """The photo candidate's backbones whose feature extraction (mirrored copies included) fits in
    ``seconds``, in MULTI_ARCHITECTURES order; the first one whatever it costs."""
    images = len(ctx.y_train) * (2 if ctx.flip else 1)
    chosen: list[str] = []
    for arch in MULTI_ARCHITECTURES:
        cost = sum(ctx.seconds_for(a, NATIVE_SIZE[a], images) for a in [*chosen, arch])
        if not chosen or cost <= seconds:
            chosen.append(arch)
    return chosen


def _multi_serving_seconds(ctx: _Context, architectures: Sequence[str], images: int) -> float:
    """What the photo candidate's forward over ``images`` costs (both mirror images: the most)."""
    return sum(ctx.seconds_for(a, NATIVE_SIZE[a], 2 * images) for a in architectures)


def _short_names(architectures: Sequence[str]) -> str:
    """``lite2+lite0``: the photo candidate's backbones as its name shows them."""
    return "+".join(a.replace("tf_efficientnet_", "") for a in architectures)


def _probe_multi(ctx: _Context, plan: Sequence[str]) -> Candidate:
    """Frozen features of several ImageNet backbones, each at its native size, side by side, and
    one linear head on them (ml/multi.py): the head, and whether mirrored images are extra rows or
    averaged with the originals, chosen by k-fold cross-validation over the whole training side,
    which also gives the candidate's score. The head is fit on the whole training side at once.
    ``plan``: the backbones to try (``_multi_plan``)."""
    t0 = time.monotonic()
    pretrained = ctx.config.pretrained if ctx.config.pretrained != "none" else "auto"
    backbones, archs, dcfgs, sources = [], [], [], []
    for arch in plan:
        model, used, dcfg, _ = _build(ctx, arch, pretrained)
        if used is None:
            continue
        sources.append(used)
        model.reset_classifier(0)
        backbones.append(model.eval())
        archs.append(arch)
        dcfgs.append(dcfg)
    candidate = Candidate(
        f"probe_multi:{_short_names(archs) or 'none'}", "probe_multi", multi.MULTI_ARCHITECTURE, 0
    )
    if not backbones:
        candidate.note = "no pretrained weights available"
        return candidate

    # Every backbone reads the one cache at the largest native size, resized inside the module to
    # its own: what the served module does with the predictor's input, whichever backbones stay.
    side = max(NATIVE_SIZE[a] for a in archs)

    def assemble(count: int) -> multi.MultiProbe:
        return multi.MultiProbe(
            backbones[:count], sizes=[NATIVE_SIZE[a] for a in archs[:count]],
            means=[d["mean"] for d in dcfgs[:count]], stds=[d["std"] for d in dcfgs[:count]],
            num_outputs=ctx.num_outputs, input_size=side,
        ).to(ctx.device).eval()  # fmt: skip

    module = assemble(len(backbones))
    prep = {**dcfgs[0], "resize": MULTI_RESIZE}
    cache = ctx.images.cache(module.input_size, prep["interpolation"], MULTI_RESIZE)
    feats: list[np.ndarray] = []
    flipped: list[np.ndarray] = []
    for i, arch in enumerate(archs):
        started = time.monotonic()
        view = multi.MemberView(module, i)
        f = _features(ctx, view, cache, prep)
        g = _features(ctx, view, cache.flip(-1), prep) if ctx.flip and f is not None else None
        if f is None or (ctx.flip and g is None):
            break  # out of time: the backbones done so far make the candidate
        rate_images = len(cache) * (2 if ctx.flip else 1) * (NATIVE_SIZE[arch] / 224.0) ** 2
        ctx.forward_rate[arch] = rate_images / max(time.monotonic() - started, 1e-3)
        feats.append(f)
        flipped.append(g)
        logger.info("%s features: %.1f s", arch, time.monotonic() - started)
        ctx.report({"candidate": candidate.name, "stage": f"features of {arch} ({i + 1} of {len(archs)})"})
    if not feats:
        candidate.note = "stopped: out of time budget"
        candidate.seconds = time.monotonic() - t0
        return candidate
    ctx.report({"candidate": candidate.name, "stage": "choosing the head by cross-validation"})
    y = probe.targets_array(ctx.task_type, ctx.y_train)
    folds = SMALL_DATA_FOLDS if len(y) < SMALL_DATA else probe.CV_FOLDS
    # The first backbone alone, then with the next ones beside it: each head and its mirror
    # handling by k-fold CV on the same folds; the better estimate is kept, fewer backbones on a tie.
    best = None
    tried_sets: dict[str, float | None] = {}
    for count in range(1, len(feats) + 1):
        x = np.concatenate(feats[:count], axis=1)
        x_flipped = np.concatenate(flipped[:count], axis=1) if ctx.flip else None
        head = probe.fit_linear_head(
            ctx.task_type, x, y, ctx.num_outputs, flipped=x_flipped, seed=ctx.config.seed, folds=folds,
            average_flips=True,
        )  # fmt: skip
        estimate = probe.cv_estimate(ctx.task_type, head, y, ctx.target_std)
        tried_sets[_short_names(archs[:count])] = None if estimate is None else round(estimate.score, 4)
        key = (-math.inf, 0.0) if estimate is None else (estimate.score, -estimate.loss)
        if best is None or key > best[0]:
            best = (key, count, x, x_flipped, head, estimate)
    logger.info("multi head by %d-fold CV: %.1f s", folds, time.monotonic() - t0)
    _, count, x, x_flipped, head, estimate = best
    if count < len(archs):  # fewer backbones won, or the budget stopped the extraction early
        archs, dcfgs = archs[:count], dcfgs[:count]
        module = assemble(count)
        candidate.name = f"probe_multi:{_short_names(archs)}"
    module.flip_average = head.hyper["flip"] == "average"
    probe.to_linear(head, module.head)
    candidate.oof = head.oof
    if estimate is not None:
        candidate.score, candidate.nll, candidate.thresholds = (
            estimate.score,
            estimate.loss,
            estimate.thresholds,
        )
        candidate.hyper = {**head.hyper, "cv_folds": estimate.folds, "cv_fold_sd": round(estimate.fold_sd, 4)}
    else:
        candidate.hyper = dict(head.hyper)
    candidate.hyper["backbone_sets"] = tried_sets
    candidate.model, candidate.pretrained = module, ", ".join(sorted(set(sources[:count])))
    candidate.input_size = module.input_size
    candidate.preprocessing = prep
    candidate.config = dataclasses.replace(
        ctx.config, architecture=multi.MULTI_ARCHITECTURE, input_size=module.input_size, pretrained=pretrained
    )
    candidate.multi_spec = multi.spec(module, archs, [d["mean"] for d in dcfgs], [d["std"] for d in dcfgs])

    def extract_test(test_images: Images) -> tuple[np.ndarray, np.ndarray | None]:
        # The test side's features through the same backbones, mirror images too when used.
        test_cache = test_images.cache(module.input_size, prep["interpolation"], MULTI_RESIZE)
        views = [multi.MemberView(module, i) for i in range(len(archs))]
        extra = np.concatenate([_features(ctx, v, test_cache, prep, budget=False) for v in views], axis=1)
        if x_flipped is None:
            return extra, None
        mirrored = [_features(ctx, v, test_cache.flip(-1), prep, budget=False) for v in views]
        return extra, np.concatenate(mirrored, axis=1)

    candidate.final_refit = _head_final_refit(ctx, module.head, x, x_flipped, y, head.hyper, extract_test)
    candidate.seconds = time.monotonic() - t0
    return candidate


def _cols(x: np.ndarray | None, start: int, stop: int | None) -> np.ndarray | None:
    return None if x is None else x[:, start:stop]


def _fit_head(
    ctx: _Context,
    candidate: Candidate,
    layer: nn.Linear,
    x: np.ndarray,
    flipped: np.ndarray | None,
    fit_pos: list[int],
    val_pos: list[int],
    extract_test: Callable[[Images], tuple[np.ndarray, np.ndarray | None]] | None = None,
) -> None:
    """A probe's head: chosen by cross-validation on the fit part, scored on the validation slice,
    written into ``layer``; ``finalize`` refits it on the whole training side, ``final_refit`` on
    the training and test sides (``extract_test`` gives the test side's features)."""
    t0 = time.monotonic()
    y = probe.targets_array(ctx.task_type, ctx.y_train)
    fit_idx, val_idx = np.asarray(fit_pos, dtype=np.int64), np.asarray(val_pos, dtype=np.int64)
    head = probe.fit_linear_head(
        ctx.task_type, x[fit_idx], y[fit_idx], ctx.num_outputs,
        flipped=None if flipped is None else flipped[fit_idx], seed=ctx.config.seed,
    )  # fmt: skip
    out = probe.predict(ctx.task_type, head, x[val_idx])
    if len(val_idx):  # else (a handful of images): nothing held out, nothing to score
        candidate.val_outputs = out
        candidate.nll = probe.cv_loss(ctx.task_type, out, y[val_idx])
        candidate.score, candidate.thresholds = probe.validation_score(
            ctx.task_type, out, y[val_idx], ctx.target_std
        )
    candidate.hyper = head.hyper

    def finalize() -> None:
        # The winner learns from the whole training side with the hyperparameters CV picked.
        full = probe.fit_linear_head(
            ctx.task_type, x, y, ctx.num_outputs, flipped=flipped, seed=ctx.config.seed, fixed=head.hyper
        )
        probe.to_linear(full, layer)
        candidate.hyper = {**candidate.hyper, **full.hyper}  # a kernel probe's landmarks stay

    probe.to_linear(head, layer)
    candidate.model = candidate.model.eval()
    candidate.finalize = finalize
    if extract_test is not None:
        candidate.final_refit = _head_final_refit(ctx, layer, x, flipped, y, head.hyper, extract_test)
    candidate.seconds = time.monotonic() - t0


def _head_final_refit(
    ctx: _Context,
    layer: nn.Linear,
    x: np.ndarray,
    flipped: np.ndarray | None,
    y: np.ndarray,
    hyper: dict,
    extract_test: Callable[[Images], tuple[np.ndarray, np.ndarray | None]],
) -> Callable[[Images, torch.Tensor], None]:
    """A probe's ``final_refit``: its head fitted again, with the choices cross-validation made
    (``hyper``), on the training side's features ``x`` (and mirrors) and the test side's, which
    ``extract_test`` computes, written into ``layer``."""

    def final_refit(test_images: Images, y_test: torch.Tensor) -> None:
        tx, tf = extract_test(test_images)
        y_all = np.concatenate([y, probe.targets_array(ctx.task_type, y_test)])
        full = probe.fit_linear_head(
            ctx.task_type, np.concatenate([x, tx]), y_all, ctx.num_outputs, seed=ctx.config.seed,
            flipped=None if flipped is None else np.concatenate([flipped, tf]), fixed=hyper,
        )  # fmt: skip
        probe.to_linear(full, layer)

    return final_refit


def _net(
    ctx: _Context,
    kind: str,
    architecture: str,
    size: int,
    pretrained: str,
    fit_pos: list[int],
    val_pos: list[int],
    deadline: float | None,
    epochs: int | None = None,
    source: tuple[int, str] | None = None,
) -> Candidate:
    """Train a whole net (fine-tune or from scratch) on the fit part, scored on the validation part.

    ``epochs`` overrides the epoch count (a refit repeats the epochs the validation run kept).
    ``source`` (size, interpolation): the net learns from that cache average-pooled to ``size``
    instead of the images resized to it, so it can be served inside a Blend."""
    t0 = time.monotonic()
    model, used, dcfg, warnings = _build(ctx, architecture, pretrained)
    ctx.warnings.extend(warnings)
    name = f"{kind}:{architecture}@{size}"
    cfg = dataclasses.replace(ctx.config, architecture=architecture, input_size=size, pretrained=pretrained)
    if epochs is not None:
        cfg.epochs = epochs
    elif kind == "scratch":
        # A net from scratch needs a few hundred steps whatever the data size; on a small set
        # that is many epochs, each a fraction of a second (the deadline still rules).
        steps_per_epoch = max(1, math.ceil(len(fit_pos) / cfg.batch_size))
        cfg.epochs = max(cfg.epochs, math.ceil(cfg.scratch_min_steps / steps_per_epoch))
    if cfg.lr is None:
        cfg.lr = 1e-4 if used else 2e-3
    if cfg.freeze_bn is None:
        cfg.freeze_bn = used is not None
    cache = ctx.images.pooled(source, size) if source else ctx.images.cache(size, dcfg["interpolation"])
    generator = seed_everything(ctx.config.seed)
    fit_t = torch.as_tensor(fit_pos, dtype=torch.long)
    val_t = torch.as_tensor(val_pos, dtype=torch.long)

    def report(info: dict) -> None:
        ctx.report({**info, "candidate": name})

    run = train_net(
        model, cfg, cache[fit_t], ctx.y_train[fit_t],
        task_type=ctx.task_type, mean=dcfg["mean"], std=dcfg["std"], pretrained=used is not None,
        generator=generator, deadline=deadline, started=time.monotonic(),
        val_images=cache[val_t] if len(val_pos) else None, y_val=ctx.y_train[val_t] if len(val_pos) else None,
        target_std=ctx.target_std, flip=ctx.flip, progress=report,
    )  # fmt: skip
    candidate = Candidate(name, kind, architecture, size, model=model.eval(), pretrained=used)
    candidate.preprocessing = dcfg
    candidate.config = cfg
    candidate.source = source
    candidate.history = run.history
    candidate.hyper = {"lr": cfg.lr, "best_epoch": run.best_epoch, "flip": ctx.flip}

    def final_refit(test_images: Images, y_test: torch.Tensor) -> None:
        # The same net trained afresh on both sides for the epochs this run kept, then copied into
        # this module in place (a blend or a pooling wrapper holds it).
        joined = dataclasses.replace(
            ctx, images=_Joined(ctx.images, test_images), y_train=torch.cat([ctx.y_train, y_test]),
            budget=Budget(time.monotonic(), None),
        )  # fmt: skip
        everything = list(range(len(joined.y_train)))
        kept = candidate.hyper.get("best_epoch") or len(candidate.history) or None
        again = _net(joined, kind, architecture, size, pretrained, everything, [], None, kept, source=source)
        model.load_state_dict(again.model.state_dict())
        candidate.hyper["final_refit_epochs"] = len(again.history)

    candidate.final_refit = final_refit
    if run.validation is not None:
        candidate.score, candidate.thresholds = run.validation["score"], run.validation["thresholds"]
        candidate.val_outputs = run.validation["outputs"]
        truth = probe.targets_array(ctx.task_type, ctx.y_train[val_t])
        candidate.nll = probe.cv_loss(ctx.task_type, run.validation["outputs"], truth)
    candidate.seconds = time.monotonic() - t0
    return candidate


def _fixed(ctx: _Context) -> Candidate:
    """The user's architecture, trained on the whole training side (no validation slice).

    multi_label thresholds are tuned on the training side's own predictions: the test side is
    never used to set anything.
    """
    cfg = ctx.config
    pretrained = cfg.pretrained != "none"
    size = cfg.input_size
    if size is None:
        size = auto_input_size([int(ctx.median_side)])
        if pretrained:
            size = max(size, MIN_PRETRAINED_INPUT_SIZE)
    ctx.config = dataclasses.replace(cfg, input_size=size)
    ctx.fixed = True
    everything = list(range(len(ctx.y_train)))
    deadline = None if ctx.budget.deadline is None else ctx.budget.deadline - RESERVE_S
    candidate = _net(ctx, "fixed", cfg.architecture, size, cfg.pretrained, everything, [], deadline)
    if ctx.task_type == "multi_label":
        prep = candidate.preprocessing
        cache = ctx.images.cache(size, prep["interpolation"])
        logits, _ = forward_outputs(candidate.model, cache, mean=prep["mean"], std=prep["std"])
        candidate.thresholds = metrics.best_thresholds(
            postprocess(logits, "multi_label").numpy(), ctx.y_train.numpy()
        )
    return candidate


def _refit(ctx: _Context, winner: Candidate, fit_pos: list[int], left: Callable[[], float]) -> None:
    """Train the winning net again on the whole training side (validation slice included) for
    the epochs its validation run kept, when that fits in the budget; else keep it as it is."""
    everything = list(range(len(ctx.y_train)))
    epochs = winner.hyper.get("best_epoch") or len(winner.history)
    if ctx.budget.deadline is not None and _refit_seconds(winner, len(fit_pos), len(everything)) > left():
        winner.hyper["refit"] = False
        return
    deadline = None if ctx.budget.deadline is None else time.monotonic() + left()
    pretrained = winner.config.pretrained if winner.config else "none"
    again = _net(
        ctx, winner.kind, winner.architecture, winner.input_size, pretrained, everything, [], deadline,
        epochs, source=winner.source,
    )  # fmt: skip
    winner.model, winner.config = again.model, again.config
    winner.final_refit = again.final_refit
    winner.hyper["refit"] = True
    winner.seconds += again.seconds


def _refit_seconds(net: Candidate, n_fit: int, n_all: int) -> float:
    """What retraining ``net`` on all ``n_all`` images for its kept epochs should take."""
    epochs = net.hyper.get("best_epoch") or len(net.history)
    return net.seconds * n_all / max(n_fit, 1) * epochs / max(len(net.history), 1)


def _pool_source(tried: list[Candidate], size: int) -> tuple[int, str] | None:
    """The first probe's cache, when ``size`` divides its side: a net from scratch then learns from
    it average-pooled, and can be served blended with that probe from the probe's input."""
    for c in tried:
        if c.kind == "probe" and c.model is not None and c.input_size > size and c.input_size % size == 0:
            return c.input_size, c.preprocessing["interpolation"]
    return None


def _blend(
    ctx: _Context, first: Candidate, second: Candidate, val_pos: list[int], use_loss: bool
) -> Candidate:
    """The weighted mean of two candidates' outputs, its weight chosen on the validation slice
    (score, then log loss when the slice is large enough, then the weight nearest an even mix)."""
    t0 = time.monotonic()
    truth = probe.targets_array(ctx.task_type, ctx.y_train[torch.as_tensor(val_pos, dtype=torch.long)])
    best = None
    for w in blend.WEIGHT_GRID:
        out = blend.mix_outputs([first.val_outputs, second.val_outputs], [w, 1.0 - w])
        score, thresholds = probe.validation_score(ctx.task_type, out, truth, ctx.target_std)
        nll = probe.cv_loss(ctx.task_type, out, truth)
        key = (score, -nll if use_loss else 0.0, -abs(w - 0.5))
        if best is None or key > best[0]:
            best = (key, w, score, nll, thresholds)
    _, w, score, nll, thresholds = best
    name = f"blend:{first.name}+{second.name}"
    candidate = Candidate(name, "blend", blend.BLEND_ARCHITECTURE, first.input_size)
    candidate.score, candidate.nll, candidate.thresholds = score, nll, thresholds
    candidate.members = [first, second]
    candidate.hyper = {"weights": [w, round(1.0 - w, 6)]}
    candidate.preprocessing = first.preprocessing
    candidate.pretrained, candidate.config = first.pretrained, first.config
    _assemble(ctx, candidate)
    candidate.seconds = time.monotonic() - t0
    return candidate


def _assemble(ctx: _Context, candidate: Candidate) -> None:
    """Make ``candidate.model`` the module to serve: a Blend of its members, or, for a net trained
    on a pooled cache, that net behind the pooling (its input is then the source's size)."""
    members = candidate.members or [candidate]
    size = candidate.input_size if candidate.members else candidate.source[0]
    means = [m.preprocessing["mean"] for m in members]
    stds = [m.preprocessing["std"] for m in members]
    module = blend.Blend(
        [m.model for m in members],
        task_type=ctx.task_type,
        weights=candidate.hyper.get("weights", [1.0]) if candidate.members else [1.0],
        pools=[size // m.input_size for m in members],
        means=means,
        stds=stds,
    )
    candidate.model = module.to(ctx.device).eval()
    candidate.blend_spec = blend.spec(
        module, [m.architecture for m in members], [m.input_size for m in members], means, stds,
        taps=[m.taps_spec for m in members],
    )  # fmt: skip
    if not candidate.members:
        candidate.input_size = size
        candidate.preprocessing = {**candidate.preprocessing, "interpolation": candidate.source[1]}
        candidate.source = None


def _validation_split(ctx: _Context) -> tuple[list[int], list[int]]:
    """Positions (into the training side) of the fit part and the validation slice."""
    n = len(ctx.y_train)
    if n < 4:
        return list(range(n)), []
    if ctx.task_type == "multi_class":
        raw = ctx.y_train.tolist()
    elif ctx.task_type == "multi_label":
        raw = [[j for j, v in enumerate(row) if v > 0.5] for row in ctx.y_train.tolist()]
    else:
        raw = ctx.y_train.tolist()
    held = stratified_split(
        list(range(n)), _strata(ctx.task_type, raw), [False] * n,
        test_fraction=ctx.config.validation_fraction, seed=ctx.config.seed + 1,
    )  # fmt: skip
    return [i for i in range(n) if not held[i]], [i for i in range(n) if held[i]]


def choose(candidates: list[Candidate], order: tuple[str, ...], use_loss: bool) -> Candidate:
    """The highest validation score; ties by the lower validation loss when ``use_loss``, then by
    the first kind in ``order``, then the first tried."""
    return max(
        candidates,
        key=lambda c: (
            c.score if c.score is not None else -math.inf,
            -(c.nll if c.nll is not None else math.inf) if use_loss else 0.0,
            -order.index(c.kind),
            -candidates.index(c),
        ),
    )


def _against_cross_validated(
    ctx: _Context, cross_validated: Candidate, others: list[Candidate], use_loss: bool, val_pos: list[int]
) -> Candidate:
    """The cross-validated candidate, unless another, scored on the one validation slice, beats it
    there by more than the noise of that comparison.

    Both are compared on the same images: the other's outputs on the slice against the cross-
    validated candidate's out-of-fold outputs for those images (each from a fold that did not train
    on it). The other wins when its mean per-image gain (errors saved; absolute error for
    regression) exceeds PAIRED_Z standard errors of that gain: a 20 % slice of a few dozen images
    says little, and the first photo benchmark run picked a fine-tuned net that scored 18 of 21
    there and 64 % on unseen photos, against the probe's 74 % cross-validated."""
    rule: dict[str, Any] = {"cross_validated": cross_validated.name, "paired_z": PAIRED_Z}
    ctx.validation_info["rule"] = rule
    ctx.validation_info["cross_validation"] = {
        "candidate": cross_validated.name,
        "folds": cross_validated.hyper.get("cv_folds"),
        "images": len(ctx.y_train),
    }
    scored = [c for c in others if c.score is not None and c.val_outputs is not None]
    if not scored or cross_validated.oof is None or not val_pos:
        return cross_validated
    best = choose(scored, TIE_ORDER, use_loss)
    rule["best_other"] = best.name
    truth = probe.targets_array(ctx.task_type, ctx.y_train[torch.as_tensor(val_pos, dtype=torch.long)])
    mine = probe.per_image_loss(
        ctx.task_type, cross_validated.oof[val_pos], truth, cross_validated.thresholds
    )
    theirs = probe.per_image_loss(ctx.task_type, best.val_outputs, truth, best.thresholds)
    gain = mine - theirs
    standard_error = float(gain.std(ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else math.inf
    rule.update(
        {
            "images": len(gain),
            "mean_gain": round(float(gain.mean()), 4),
            "needed": round(PAIRED_Z * standard_error, 4),
        }
    )
    return best if gain.mean() > PAIRED_Z * standard_error else cross_validated


def _auto(ctx: _Context) -> tuple[Candidate, list[Candidate]]:
    """Try candidates within the budget and return (winner, all tried)."""
    fit_pos, val_pos = _validation_split(ctx)
    ctx.validation_info = {
        "images": len(val_pos),
        "fraction": ctx.config.validation_fraction,
        "metric": {"multi_class": "accuracy", "multi_label": "macro_f1", "regression": "-mae"}[ctx.task_type],
    }
    if not val_pos:
        # Too few images to hold any out: one candidate, nothing to choose.
        ctx.validation_info["note"] = "too few training images for a validation slice"
    tried: list[Candidate] = []
    n = len(ctx.y_train)
    small = ctx.median_side <= SMALL_IMAGE_SIDE
    reserve = RESERVE_S

    def left() -> float:
        return ctx.budget.left() - reserve

    def done(candidate: Candidate) -> None:
        tried.append(candidate)
        logger.info(
            "candidate %s: validation %s in %.1fs", candidate.name, candidate.score, candidate.seconds
        )
        ctx.report(
            {
                "candidate": candidate.name,
                "validation_score": candidate.score,
                "percent": round(100.0 * ctx.budget.fraction(), 1),
            }
        )

    pretrained_ok = ctx.config.pretrained != "none"
    if ctx.budget.deadline is not None:
        ctx.calibrate()

    def scratch(share: float) -> None:
        # A small net from scratch at the images' own size: strong on scans, digits and icons.
        size = auto_input_size([int(ctx.median_side)])
        deadline = None if ctx.budget.deadline is None else time.monotonic() + share * left()
        source = _pool_source(tried, size) if "blend" in kinds else None
        arch = SCRATCH_ARCHITECTURE
        done(_net(ctx, "scratch", arch, size, "none", fit_pos, val_pos, deadline, source=source))

    def lite_probe(arch: str, share: float, fallback: bool, at_least: int = 0, at_most: int = 0) -> None:
        # The largest ImageNet-like size whose feature extraction (mirrored copies included)
        # costs at most ``share`` of what is left; the smallest size anyway when ``fallback``.
        # Not below ``at_least`` (small images): upscaled scans hold no more detail for a larger
        # net at a smaller size (measured on Fashion-MNIST: lite2 at 128 px under lite0 at 224 on
        # 2 of 2 slices), and it takes the time the net from scratch needs to be retrained.
        sizes = [s for s in PROBE_SIZES if s <= min(NATIVE_SIZE[arch], at_most or NATIVE_SIZE[arch])]
        factor = 2 if ctx.flip else 1
        size = next((s for s in sizes if ctx.seconds_for(arch, s, n * factor) <= share * left()), None)
        if size is None and fallback:
            size = sizes[-1]
        if size is not None and size < at_least:
            logger.info("%s probe skipped: %d px affordable, the probe before saw %d", arch, size, at_least)
            size = None
        if size is not None:
            for candidate in _probe(ctx, arch, size, fit_pos, val_pos):
                done(candidate)

    def finetune() -> None:
        # Fine-tuning lite0 at ImageNet-like scale, when at least a few epochs fit in what is left.
        arch = FINETUNE_ARCHITECTURE
        size = pretrained_input_size(ctx.median_side, arch)
        epoch_s = ctx.seconds_for(arch, size, len(fit_pos), train=True)
        if ctx.budget.deadline is None or left() >= MIN_FINETUNE_EPOCHS * epoch_s + 2.0:
            deadline = None if ctx.budget.deadline is None else time.monotonic() + left()
            done(_net(ctx, "finetune", arch, size, ctx.config.pretrained, fit_pos, val_pos, deadline))

    kinds = ctx.config.candidates or DEFAULT_CANDIDATES
    asked = ctx.config.candidates is not None
    # Photos (larger than small images): several backbones' frozen features under one head, chosen
    # and scored by k-fold cross-validation over the whole training side. It reads lite0's and
    # lite2's last layers itself, so their single probes are not tried beside it.
    photo: Candidate | None = None
    if pretrained_ok and not small and "probe_multi" in kinds:
        plan = _multi_plan(ctx, MULTI_SHARE * left())
        reserve = RESERVE_S + _multi_serving_seconds(ctx, plan, ctx.n_test)
        done(_probe_multi(ctx, plan))
        photo = tried[-1] if tried[-1].model is not None else None
        if photo is None:
            reserve = RESERVE_S
    # The lite0 probe first: deterministic, cheap for what it gives, and on small images the
    # upscaled ImageNet features are a strong baseline a net from scratch must beat.
    if photo is None and pretrained_ok and ("probe" in kinds or MID_KINDS & set(kinds)):
        cheap = small and bool(MID_KINDS & set(kinds)) and "scratch" in kinds
        lite_probe(PROBE_ARCHITECTURES[0], 0.35, fallback=True, at_most=SMALL_PROBE_SIZE if cheap else 0)
        reserve = RESERVE_S + ctx.seconds_for(PROBE_ARCHITECTURES[0], 224, ctx.n_test)
    base_reserve = reserve
    if "scratch" in kinds and val_pos and (small or asked):
        scratch(0.6 if pretrained_ok and len(kinds) > 1 else 1.0)
        if tried[-1].model is not None and tried[-1].source:
            # The net will most likely be served (alone or blended): keep the time to retrain it
            # on the whole training side before trying more.
            reserve += _refit_seconds(tried[-1], len(fit_pos), n)
    first_probe = next((c.input_size for c in tried if c.kind == "probe" and c.model is not None), 0)
    if photo is None and pretrained_ok and val_pos and "probe_large" in kinds:
        lite_probe(PROBE_ARCHITECTURES[1], 0.5, fallback=not tried, at_least=first_probe if small else 0)
    if pretrained_ok and val_pos and "finetune" in kinds:
        finetune()
    reserve = base_reserve

    if not tried or all(c.model is None for c in tried):
        # No pretrained weights anywhere (or pretrained="none" with large images): a net from
        # scratch on everything the budget leaves.
        size = auto_input_size([int(ctx.median_side)])
        deadline = None if ctx.budget.deadline is None else time.monotonic() + max(left(), 1.0)
        done(_net(ctx, "scratch", SCRATCH_ARCHITECTURE, size, "none", fit_pos, val_pos, deadline))

    use_loss = len(val_pos) >= MIN_VALIDATION_FOR_LOSS
    if "blend" in kinds and val_pos:
        # A probe and a net from scratch are wrong on different images: their mixed outputs.
        # The better probe of the size the net learned from joins it, chosen as the winner is:
        # the higher score, then (on a large enough slice) the lower log loss, then the first tried.
        for net in [c for c in tried if c.source and c.model is not None and c.val_outputs is not None]:
            probes = [
                c for c in tried
                if c.kind == "probe" and c.model is not None and c.val_outputs is not None
                and c.input_size == net.source[0]
            ]  # fmt: skip
            if probes:
                done(_blend(ctx, choose(probes, TIE_ORDER, use_loss), net, val_pos, use_loss))

    usable = [c for c in tried if c.model is not None]
    # Highest validation score wins. Ties (frequent on a small validation slice) go by the log
    # loss when the slice is large enough to measure it, then to the kind that is steadier on
    # such data: a linear head before a fine-tuned or a scratch net.
    order = TIE_ORDER
    ctx.validation_info["ties"] = {"loss": use_loss, "order": list(order)}
    if photo is not None:
        winner = _against_cross_validated(
            ctx, photo, [c for c in usable if c is not photo], use_loss, val_pos
        )
    else:
        winner = choose(usable, order, use_loss)
    if winner.kind == "blend":
        # Each member learns from the whole training side as it would alone, then the mix is rebuilt.
        for member in winner.members:
            if member.kind in ("scratch", "finetune"):
                _refit(ctx, member, fit_pos, left)
        finalizers = [m.finalize for m in winner.members if m.finalize is not None]

        def finalize() -> None:
            for member_finalize in finalizers:
                member_finalize()

        winner.finalize = finalize
        refits = [m.final_refit for m in winner.members]
        if all(refits):

            def final_refit(test_images: Images, y_test: torch.Tensor) -> None:
                for member_refit in refits:
                    member_refit(test_images, y_test)

            winner.final_refit = final_refit
        winner.hyper["refit"] = [m.hyper.get("refit", m.kind == "probe") for m in winner.members]
        _assemble(ctx, winner)
    elif winner.kind in ("scratch", "finetune") and val_pos:
        _refit(ctx, winner, fit_pos, left)
    if winner.source:  # a net trained on a probe's pooled cache is served behind the pooling
        _assemble(ctx, winner)
    for candidate in usable:  # free the losers' nets before the winner is evaluated
        if candidate is not winner and all(candidate is not m for m in winner.members):
            candidate.model = None
            candidate.finalize = None
    return winner, tried
