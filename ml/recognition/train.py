"""Train one timm net on a uint8 image cache: the loops every net candidate shares.

``train_net`` reads top to bottom: (optionally) fit the head on frozen features, train the
whole net with AdamW + warmup/cosine inside the epoch and time budget, score each epoch on the
validation slice when there is one and keep the best epoch, re-estimate BatchNorm statistics.
``ml.recognition.recipe.fit`` decides which nets (and linear probes) to train and saves the winner.
"""

from __future__ import annotations

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

from ml.config import TrainConfig
from ml.data import augment, normalize
from ml.models import features_and_logits, postprocess
from ml.recognition.probe import targets_array, validation_score
from ml.runtime import forward_batch_size

logger = logging.getLogger(__name__)

ProgressFn = Callable[[dict], None]

EVAL_BATCH_SIZE = 64
HEAD_WARMUP_STEPS = 150
HEAD_WARMUP_LR = 1e-2


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
    flip: bool = True,
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
            x = augment(x, generator, flip=flip)
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
    batch_size: int | None = None,
    want_features: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eval-mode fp32 logits (and pooled features) for a uint8 cache, on CPU. ``batch_size`` None:
    EVAL_BATCH_SIZE images a pass, fewer on a CPU for large images (``forward_batch_size``)."""
    model.eval()
    device = next(model.parameters()).device
    if batch_size is None:
        batch_size = forward_batch_size(images.shape[-1], device, EVAL_BATCH_SIZE)
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
    target_std: float = 1.0,
) -> dict[str, Any]:
    """Eval-mode loss, score and outputs on a uint8 cache (the validation slice).

    ``score`` is higher-is-better (``ml.recognition.probe.validation_score``): accuracy, macro F1 at
    thresholds tuned on these images, or minus the MAE in target units. ``outputs`` are the
    probabilities (or standardised values) as numpy, ``thresholds`` those of multi_label.
    """
    logits, _ = forward_outputs(model, images, mean=mean, std=std)
    out = postprocess(logits, task_type).numpy()
    score, thresholds = validation_score(task_type, out, targets_array(task_type, targets), target_std)
    return {"loss": float(loss_fn(logits, targets)), "score": score, "outputs": out, "thresholds": thresholds}


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


@dataclass
class NetRun:
    """What ``train_net`` did: per-epoch history, the validation result of the kept weights."""

    history: list[dict[str, float]] = field(default_factory=list)
    epochs: int = 0
    best_epoch: int | None = None
    validation: dict[str, Any] | None = None  # evaluate() of the kept weights
    head_loss: float | None = None
    train_seconds: float = 0.0
    images_seen: float = 0.0


def train_net(
    model: nn.Module,
    config: TrainConfig,
    train_images: torch.Tensor,
    y_train: torch.Tensor,
    *,
    task_type: str,
    mean: Sequence[float],
    std: Sequence[float],
    pretrained: bool,
    generator: torch.Generator,
    deadline: float | None,
    started: float,
    val_images: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    target_std: float = 1.0,
    flip: bool = True,
    progress: Callable[[dict], None] | None = None,
) -> NetRun:
    """Train ``model`` (already on its device) in place; ``config`` is resolved (lr, freeze_bn set).

    With a validation slice each epoch is scored on it and the best epoch's weights are kept
    (early stopping without stopping: the schedule runs to its end, the best state wins). The
    schedule ends at ``config.epochs`` or at ``deadline``, whichever comes first.
    """
    device = next(model.parameters()).device
    loss_fn = make_loss(task_type, config)
    autocast_dtype = resolve_autocast(config.amp, device)
    scaler = torch.amp.GradScaler("cuda") if autocast_dtype == torch.float16 else None
    run = NetRun()
    if pretrained and config.head_warmup:
        run.head_loss = fit_head(model, train_images, y_train, loss_fn=loss_fn, mean=mean, std=std)["loss"]

    n = train_images.shape[0]
    batch_size = min(config.batch_size, n)
    steps_per_epoch = len(_batches(n, batch_size, None))
    schedule = Schedule(config.epochs * steps_per_epoch, config.warmup_fraction, deadline, started)
    param_groups = timm.optim.param_groups_weight_decay(model, config.weight_decay)
    optimizer = torch.optim.AdamW(param_groups, lr=config.lr)
    base_lrs = [config.lr for _ in optimizer.param_groups]
    has_val = val_images is not None and y_val is not None and val_images.shape[0] > 0
    best_state = None
    best_score = -math.inf
    for epoch in range(1, config.epochs + 1):
        if schedule.done():
            break
        stats = train_one_epoch(
            model, optimizer, train_images, y_train,
            loss_fn=loss_fn, mean=mean, std=std, batch_size=batch_size,
            generator=generator, do_augment=config.augment, flip=flip, schedule=schedule,
            base_lrs=base_lrs, autocast_dtype=autocast_dtype, scaler=scaler,
            freeze_bn=bool(config.freeze_bn),
        )  # fmt: skip
        run.epochs = epoch
        run.train_seconds += stats["seconds"]
        run.images_seen += stats["images"]
        record = {"epoch": epoch, "loss": stats["loss"]}
        if has_val:
            result = evaluate(
                model, val_images, y_val, task_type=task_type, loss_fn=loss_fn, mean=mean, std=std,
                target_std=target_std,
            )  # fmt: skip
            record.update(val_loss=result["loss"], val_score=result["score"])
            # Ties go to the later epoch: same score after more training generalises no worse.
            if result["score"] >= best_score:
                best_score, run.best_epoch = result["score"], epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        run.history.append(record)
        logger.info(
            "epoch %d/%d loss %.4f (%.1f img/s)", epoch, config.epochs, stats["loss"], stats["images_per_s"]
        )
        if progress is not None:
            progress(
                {
                    "epoch": epoch,
                    "epochs": config.epochs,
                    "loss": stats["loss"],
                    "fraction": schedule.fraction(),
                }
            )
    if run.epochs < config.epochs:
        logger.info("time budget reached after %d of %d epochs", run.epochs, config.epochs)
    if best_state is not None:
        model.load_state_dict(best_state)
    if run.history and not config.freeze_bn:
        recalibrate_batchnorm(model, train_images, mean=mean, std=std)
    if has_val:
        run.validation = evaluate(
            model, val_images, y_val, task_type=task_type, loss_fn=loss_fn, mean=mean, std=std,
            target_std=target_std,
        )  # fmt: skip
    return run
