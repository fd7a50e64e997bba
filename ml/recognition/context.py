"""What every candidate of the recipe works with: the training side's images and targets, the time
budget, the machine's measured speed, and the ``Candidate`` each one becomes.

``Images`` decodes a side once per (size, interpolation) into uint8 caches; ``Context`` carries the
data, the budget and the progress callback through every step of ``ml.recognition.recipe.fit``;
``features`` runs a net over a cache chunk by chunk, checking the budget between chunks.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.config import TrainConfig
from ml.data import build_cache
from ml.images import ImageInput
from ml.models import build_model, data_config
from ml.recognition.train import forward_outputs

ProgressFn = Callable[[dict], None]

PROBE_ARCHITECTURES = ("tf_efficientnet_lite0", "tf_efficientnet_lite2")
# Prior forward speed (images/s at 224 px, 2 CPU cores) per architecture, used to plan before
# anything was measured; replaced by the measured speed once a probe ran. Cost ~ side^2.
PRIOR_FORWARD_IMAGES_PER_S = {"tf_efficientnet_lite0": 45.0, "tf_efficientnet_lite2": 20.0}
NATIVE_SIZE = {"tf_efficientnet_lite0": 224, "tf_efficientnet_lite1": 240, "tf_efficientnet_lite2": 260}
# One training step (forward + backward) costs about this many forward passes.
TRAIN_COST_FACTOR = 3.5
# Seconds kept back from the budget for the test-side evaluation and saving.
RESERVE_S = 3.0
# Images per feature-extraction call: the budget is checked between calls.
FEATURE_CHUNK = 64
# Images and side of the speed check run before planning (lite0 forward, a fraction of a second).
CALIBRATION_IMAGES = 16
CALIBRATION_SIZE = 128


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
    taps_spec: dict | None = None  # model.json's "taps": a probe on middle layers (taps.py)
    multi_spec: dict | None = None  # model.json's "multi": the photo candidate (multi.py)
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


# --------------------------------------------------------------------------- targets


def check_targets(items: Sequence[tuple[ImageInput, Any]], task_type: str, num_labels: int) -> None:
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


def target_tensor(targets: Sequence[Any], task_type: str, num_labels: int) -> torch.Tensor:
    if task_type == "multi_class":
        return torch.tensor([int(t) for t in targets], dtype=torch.long)
    if task_type == "multi_label":
        y = torch.zeros((len(targets), num_labels), dtype=torch.float32)
        for i, t in enumerate(targets):
            for j in t:
                y[i, int(j)] = 1.0
        return y
    return torch.tensor([float(t) for t in targets], dtype=torch.float32)


def strata(task_type: str, targets: Sequence[Any]) -> list:
    """What the validation split is stratified by: the class, the label set, a value quintile."""
    if task_type == "multi_class":
        return [int(t) for t in targets]
    if task_type == "multi_label":
        return [tuple(sorted(int(j) for j in t)) for t in targets]
    values = np.asarray(targets, dtype=np.float64)
    ranks = values.argsort(kind="stable").argsort(kind="stable")
    bins = max(1, min(5, len(values) // 5))
    return [int(r * bins // max(len(values), 1)) for r in ranks]


# --------------------------------------------------------------------------- images and time


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


class Joined(Images):
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


# --------------------------------------------------------------------------- the context


@dataclass
class Context:
    """What every candidate needs: the data, the budget, and where to report."""

    config: TrainConfig
    task_type: str
    num_outputs: int
    images: Images  # the training side only
    y_train: torch.Tensor  # standardised for regression (``target_mean`` and ``target_std``)
    target_std: float  # 1.0 unless regression
    device: torch.device
    budget: Budget
    flip: bool
    grey: bool
    median_side: float
    progress: ProgressFn | None
    n_test: int
    target_mean: float | None = None  # None unless regression
    warnings: list[str] = field(default_factory=list)
    validation_info: dict | None = None
    forward_rate: dict[str, float] = field(default_factory=dict)  # arch -> images/s at 224 px

    fixed: bool = False  # one net: progress follows its schedule, not the whole budget

    def target_units(self) -> tuple[float | None, float | None]:
        """(mean, std) that turn a standardised output back into target units, as model.json keeps
        them: both None unless regression."""
        if self.target_mean is None:
            return None, None
        return self.target_mean, self.target_std

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


# --------------------------------------------------------------------------- nets and features


def build(ctx: Context, architecture: str, pretrained: str) -> tuple[nn.Module, str | None, dict, list[str]]:
    """``architecture`` with ``pretrained`` weights on the fit's device: (net, what the weights came
    from, its preprocessing, warnings)."""
    cfg = dataclasses.replace(ctx.config, architecture=architecture, pretrained=pretrained)
    built = build_model(cfg, ctx.num_outputs)
    model = built.model.to(ctx.device).to(memory_format=torch.channels_last)
    return model, built.pretrained, data_config(built.model), built.warnings


def features(
    ctx: Context, model: nn.Module, cache: torch.Tensor, dcfg: dict, budget: bool = True
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
