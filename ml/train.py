"""Fit a timm model on a user's labelled images and save it as a servable version.

Reads top to bottom: resolve the config, build the model, decode every image once into a
uint8 cache, (optionally) fit the head on frozen features, fine-tune the whole net with
AdamW + warmup/cosine inside the epoch and time budget, evaluate on the test side, save.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import timm.optim
import torch
import torch.nn.functional as F
from torch import nn

from ml import artifacts, metrics
from ml.config import TASK_TYPES, TrainConfig
from ml.data import ImageInput, augment, auto_input_size, build_cache, image_shorter_sides, normalize
from ml.models import build_model, data_config, features_and_logits, postprocess

logger = logging.getLogger(__name__)

ProgressFn = Callable[[dict], None]

EVAL_BATCH_SIZE = 64
HEAD_WARMUP_STEPS = 150
HEAD_WARMUP_LR = 1e-2


@dataclass
class TrainResult:
    metrics: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    # One dict per test item that could be read: index (into items), true, predicted, probs.
    predictions: list[dict[str, Any]] = field(default_factory=list)
    config: TrainConfig | None = None  # resolved: input_size, lr and device filled in
    out_dir: str | None = None


# --------------------------------------------------------------------------- helpers


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_autocast(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype or None. On CPU only an explicit "bf16" turns it on: EfficientNet's
    depthwise convolutions measure slower in bf16 than fp32 on CPU (see bench/)."""
    if amp == "off":
        return None
    if device.type == "cuda":
        if amp == "fp16":
            return torch.float16
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else None


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def make_loss(task_type: str, config: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss on raw model outputs: CE (multi_class), BCE with logits (multi_label), L1/MSE
    on standardised targets (regression, output column 0)."""
    if task_type == "multi_class":
        return lambda out, y: F.cross_entropy(out.float(), y, label_smoothing=config.label_smoothing)
    if task_type == "multi_label":
        return lambda out, y: F.binary_cross_entropy_with_logits(out.float(), y)
    if config.regression_loss == "mse":
        return lambda out, y: F.mse_loss(out.float()[:, 0], y)
    return lambda out, y: F.l1_loss(out.float()[:, 0], y)


def _finite(value: Any) -> Any:
    """NaN/inf -> None, recursively, so metrics stay valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class Schedule:
    """Linear warmup then cosine decay, driven by whichever runs out first: steps or time.

    ``fraction()`` is max(step / total_steps, elapsed / budget), so a time budget shortens
    the schedule instead of cutting training off at a high learning rate.
    """

    def __init__(self, total_steps: int, warmup_fraction: float, deadline: float | None, started: float):
        self.total_steps = max(1, total_steps)
        self.warmup = warmup_fraction
        self.deadline = deadline
        self.started = started
        self.step = 0

    def fraction(self) -> float:
        frac = self.step / self.total_steps
        if self.deadline is not None:
            span = max(self.deadline - self.started, 1e-6)
            frac = max(frac, (time.monotonic() - self.started) / span)
        return min(frac, 1.0)

    def done(self) -> bool:
        # At least one step even when decoding alone used up the budget: a net that never
        # trained is worth less than a slightly late one.
        return self.step >= self.total_steps or (
            self.step > 0 and self.deadline is not None and time.monotonic() >= self.deadline
        )

    def factor(self) -> float:
        frac = self.fraction()
        if self.warmup > 0 and frac < self.warmup:
            return max(frac / self.warmup, 0.01)
        rest = (frac - self.warmup) / max(1.0 - self.warmup, 1e-6)
        return 0.5 * (1.0 + math.cos(math.pi * min(rest, 1.0)))


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Index batches over n items (shuffled when a generator is given). A trailing batch of
    one is folded into the previous one: BatchNorm on a 1x1 feature map cannot train on it."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2] = torch.cat([chunks[-2], chunks.pop()])
    return chunks


# --------------------------------------------------------------------------- loops


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    generator: torch.Generator,
    do_augment: bool = True,
    schedule: Schedule | None = None,
    base_lrs: Sequence[float] | None = None,
    autocast_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    freeze_bn: bool = False,
) -> dict[str, float]:
    """One pass over ``images`` (uint8 (N, 3, S, S) cache) in shuffled batches.

    Batches are normalised (and augmented) on the model's device. When a ``schedule`` is
    given it sets each step's learning rate and can end the epoch early (time budget).
    ``freeze_bn`` keeps BatchNorm layers on their running statistics (affine weights still
    train). Returns loss (mean over seen images), images, seconds and images_per_s.
    """
    model.train()
    if freeze_bn:
        set_batchnorm_eval(model)
    device = next(model.parameters()).device
    base_lrs = base_lrs or [g["lr"] for g in optimizer.param_groups]
    total_loss, seen, started = 0.0, 0, time.perf_counter()
    for idx in _batches(images.shape[0], batch_size, generator):
        if schedule is not None:
            if schedule.done():
                break
            factor = schedule.factor()
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * factor
        x = normalize(images[idx].to(device, non_blocking=True), mean, std)
        if do_augment:
            x = augment(x, generator)
        y = targets[idx].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if schedule is not None:
            schedule.step += 1
        total_loss += float(loss.detach()) * len(idx)
        seen += len(idx)
    seconds = time.perf_counter() - started
    return {
        "loss": total_loss / seen if seen else float("nan"),
        "images": float(seen),
        "seconds": seconds,
        "images_per_s": seen / seconds if seconds > 0 else 0.0,
    }


@torch.inference_mode()
def forward_outputs(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = EVAL_BATCH_SIZE,
    want_features: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eval-mode fp32 logits (and pooled features) for a uint8 cache, on CPU."""
    model.eval()
    device = next(model.parameters()).device
    logits, feats = [], []
    for start in range(0, images.shape[0], batch_size):
        x = normalize(images[start : start + batch_size].to(device), mean, std)
        f, out = features_and_logits(model, x)
        logits.append(out.float().cpu())
        if want_features:
            feats.append(f.float().cpu())
    if not logits:
        return torch.zeros((0, 0)), (torch.zeros((0, 0)) if want_features else None)
    return torch.cat(logits), (torch.cat(feats) if want_features else None)


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    task_type: str,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    mean: Sequence[float],
    std: Sequence[float],
    target_mean: float = 0.0,
    target_std: float = 1.0,
) -> dict[str, float]:
    """Loss plus a headline score on a uint8 cache: accuracy (multi_class, multi_label exact
    match at 0.5) or mae (regression, in target units). Full metrics come from ml.metrics."""
    if images.shape[0] == 0:
        return {"loss": float("nan")}
    logits, _ = forward_outputs(model, images, mean=mean, std=std)
    result = {"loss": float(loss_fn(logits, targets))}
    out = postprocess(logits, task_type, target_mean, target_std)
    if task_type == "multi_class":
        result["accuracy"] = float((out.argmax(1) == targets).float().mean())
    elif task_type == "multi_label":
        result["accuracy"] = float(((out >= 0.5) == (targets >= 0.5)).all(1).float().mean())
    else:
        true = targets * target_std + target_mean
        result["mae"] = float((out - true).abs().mean())
    return result


def _batchnorms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def set_batchnorm_eval(model: nn.Module) -> None:
    """Put BatchNorm layers in eval mode: they normalise with their running statistics.

    Fine-tuning a pretrained net on a few dozen images: batch statistics of 8-32 small,
    similar images are far from ImageNet's, so train-mode BN shifts every activation and
    undoes the pretrained features (measured: training loss rises from the head-only fit).
    """
    for m in _batchnorms(model):
        m.eval()


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = EVAL_BATCH_SIZE,
) -> None:
    """Re-estimate BatchNorm running statistics as an exact average over ``images``.

    A short fine-tune (tens of steps) leaves running stats as an exponential average that
    still lags the weights, so eval-mode outputs differ from what training saw; one extra
    forward pass over the un-augmented training images fixes that for ~one epoch's
    forward cost (no backward).
    """
    norms = _batchnorms(model)
    if not norms or images.shape[0] < 2:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = plain mean over batches
    model.train()
    device = next(model.parameters()).device
    for idx in _batches(images.shape[0], batch_size, None):
        model(normalize(images[idx].to(device), mean, std))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def fit_head(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    mean: Sequence[float],
    std: Sequence[float],
    steps: int = HEAD_WARMUP_STEPS,
) -> dict[str, float]:
    """Train only the classifier on frozen pooled features of the (un-augmented) training
    images: one forward pass over the data, then full-batch steps that cost microseconds.
    Fine-tuning then starts from a head that already fits, instead of pushing large random
    gradients into the pretrained backbone."""
    _, feats = forward_outputs(model, images, mean=mean, std=std, want_features=True)
    head = model.get_classifier()
    device = next(head.parameters()).device
    # clone(): tensors made under inference_mode cannot take part in autograd.
    feats, y = feats.clone().to(device), targets.to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=HEAD_WARMUP_LR, weight_decay=1e-4)
    head.train()
    for _ in range(steps):
        loss = loss_fn(head(feats), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {"loss": float(loss.detach())}


# --------------------------------------------------------------------------- fit


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
    splits, see ml.split). Targets: a label index (multi_class), a list of label indices
    (multi_label, may be empty), or a float (regression). ``labels`` ({"id", "name"}) fix
    the output order. Unreadable images are skipped with a warning. Returns metrics on the
    test side, warnings, and one prediction per test item; writes model.safetensors and
    model.json when ``out_dir`` is given.
    """
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
    warnings: list[str] = []

    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    config.device = str(device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    images = [image for image, _ in items]
    if config.input_size is None:
        config.input_size = auto_input_size(image_shorter_sides(images))

    built = build_model(config, num_outputs)
    model, warnings = built.model, warnings + built.warnings
    dcfg = data_config(model)
    mean, std = dcfg["mean"], dcfg["std"]
    if config.lr is None:
        config.lr = 1e-4 if built.pretrained else 2e-3
    if config.freeze_bn is None:
        config.freeze_bn = built.pretrained is not None

    # Decode + resize once; every epoch reuses these uint8 tensors.
    cache, ok, cache_warnings = build_cache(images, config.input_size, dcfg["interpolation"])
    warnings += cache_warnings
    ok_test = torch.tensor([bool(test_mask[i]) for i in ok], dtype=torch.bool)
    train_idx = [i for i, t in zip(ok, ok_test.tolist(), strict=True) if not t]
    test_idx = [i for i, t in zip(ok, ok_test.tolist(), strict=True) if t]
    if not train_idx:
        raise ValueError("no readable training images")
    train_images, test_images = cache[~ok_test], cache[ok_test]
    raw_train = [items[i][1] for i in train_idx]
    raw_test = [items[i][1] for i in test_idx]
    y_train = _target_tensor(raw_train, task_type, len(labels))
    y_test = _target_tensor(raw_test, task_type, len(labels))
    target_mean = target_std = None
    if task_type == "regression":
        # Standardised targets keep the loss scale (and so the learning rate) independent
        # of the units; the stats are saved so predictions come back in target units.
        target_mean = float(y_train.mean())
        target_std = float(y_train.std()) if len(y_train) > 1 else 0.0
        target_std = target_std if target_std > 1e-8 else 1.0
        y_train = (y_train - target_mean) / target_std
        y_test = (y_test - target_mean) / target_std
    del cache

    model = model.to(device).to(memory_format=torch.channels_last)
    loss_fn = make_loss(task_type, config)
    autocast_dtype = resolve_autocast(config.amp, device)
    scaler = torch.amp.GradScaler("cuda") if autocast_dtype == torch.float16 else None
    deadline = started + config.time_budget_s if config.time_budget_s else None

    head_stats = None
    if built.pretrained and config.head_warmup:
        head_stats = fit_head(model, train_images, y_train, loss_fn=loss_fn, mean=mean, std=std)

    batch_size = min(config.batch_size, len(train_idx))
    steps_per_epoch = len(_batches(len(train_idx), batch_size, None))
    schedule = Schedule(config.epochs * steps_per_epoch, config.warmup_fraction, deadline, started)
    param_groups = timm.optim.param_groups_weight_decay(model, config.weight_decay)
    optimizer = torch.optim.AdamW(param_groups, lr=config.lr)
    base_lrs = [config.lr for _ in optimizer.param_groups]

    history: list[dict[str, float]] = []
    epochs_done = 0
    train_seconds = 0.0
    for epoch in range(1, config.epochs + 1):
        if schedule.done():
            break
        stats = train_one_epoch(
            model, optimizer, train_images, y_train,
            loss_fn=loss_fn, mean=mean, std=std, batch_size=batch_size,
            generator=generator, do_augment=config.augment, schedule=schedule,
            base_lrs=base_lrs, autocast_dtype=autocast_dtype, scaler=scaler,
            freeze_bn=config.freeze_bn,
        )  # fmt: skip
        epochs_done = epoch
        train_seconds += stats["seconds"]
        history.append(stats)
        logger.info(
            "epoch %d/%d loss %.4f (%.1f img/s)", epoch, config.epochs, stats["loss"], stats["images_per_s"]
        )
        if progress is not None:
            progress(
                {
                    "epoch": epoch,
                    "epochs": config.epochs,
                    "loss": stats["loss"],
                    "percent": round(100.0 * schedule.fraction(), 1),
                }
            )
    if epochs_done < config.epochs:
        logger.info("time budget reached after %d of %d epochs", epochs_done, config.epochs)

    if history and not config.freeze_bn:
        recalibrate_batchnorm(model, train_images, mean=mean, std=std)

    # ---- evaluation on the test side (fp32, eval mode: exactly what the predictor does)
    logits, _ = forward_outputs(model, test_images, mean=mean, std=std)
    thresholds = None
    predictions: list[dict[str, Any]] = []
    if task_type == "multi_class":
        probs = postprocess(logits, task_type).numpy() if len(test_idx) else np.zeros((0, num_outputs))
        result_metrics = metrics.classification_metrics(probs, raw_test, labels)
        for n, i in enumerate(test_idx):
            predictions.append(
                {
                    "index": i,
                    "true": int(raw_test[n]),
                    "predicted": int(probs[n].argmax()),
                    "probs": probs[n].tolist(),
                }
            )
    elif task_type == "multi_label":
        probs = postprocess(logits, task_type).numpy() if len(test_idx) else np.zeros((0, num_outputs))
        truth = y_test.numpy()
        # Thresholds tuned on the test side (the only held-out data a small set has); a
        # label without positives there keeps 0.5.
        thresholds = metrics.best_thresholds(probs, truth) if len(test_idx) else [0.5] * num_outputs
        result_metrics = metrics.multi_label_metrics(probs, truth, labels, thresholds)
        for n, i in enumerate(test_idx):
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
        values = (
            postprocess(logits, task_type, target_mean, target_std).numpy() if len(test_idx) else np.zeros(0)
        )
        truth = np.asarray(raw_test, dtype=np.float64)
        result_metrics = metrics.regression_metrics(values, truth)
        for n, i in enumerate(test_idx):
            predictions.append(
                {"index": i, "true": float(truth[n]), "predicted": float(values[n]), "probs": None}
            )

    train_images_seen = sum(h["images"] for h in history)
    result_metrics.update(
        {
            "pretrained": built.pretrained,
            "training_time": round(time.monotonic() - started, 3),
            "number_of_training_images": len(train_idx),
            "number_of_testing_images": len(test_idx),
            "epochs": epochs_done,
            "input_size": config.input_size,
            "train_loss": history[-1]["loss"] if history else (head_stats or {}).get("loss"),
            "train_images_per_s": train_images_seen / train_seconds if train_seconds else None,
        }
    )
    result_metrics = _finite(result_metrics)
    predictions = _finite(predictions)

    if out_dir is not None:
        meta = {
            "architecture": config.architecture,
            "input_size": config.input_size,
            "num_outputs": num_outputs,
            "mean": mean,
            "std": std,
            "interpolation": dcfg["interpolation"],
            "task_type": task_type,
            "labels": labels,
            "thresholds": thresholds,
            "target_mean": target_mean,
            "target_std": target_std,
            "pretrained": built.pretrained,
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
