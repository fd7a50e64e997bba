"""The recipe's candidates, each fitted on the fit part and scored on the validation slice.

- ``probes``: frozen ImageNet features and a linear head (on the last layer, on the middle stages
  pooled on a grid, or an RBF-kernel head on those), the head chosen by cross-validation;
- ``net``: a whole net trained (fine-tuned, or from scratch), ``fixed`` the one net a user named;
- ``blend_of``: the weighted mean of a probe's and a net's outputs, served as one module.
The photo candidate (several backbones under one head) is ``ml.recognition.photo``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ml.config import DEFAULT_CANDIDATES, MIN_PRETRAINED_INPUT_SIZE, TrainConfig
from ml.data import auto_input_size
from ml.models import postprocess
from ml.recognition import blend, kernel, metrics, probe, taps
from ml.recognition.context import RESERVE_S, Budget, Candidate, Context, Images, Joined, build, features
from ml.recognition.train import forward_outputs, seed_everything, train_net

# The kinds read from a net's middle stages (taps.py): a linear head, a kernel head.
MID_KINDS = frozenset({"probe_mid", "probe_kernel"})

# The test side's features (and their mirror images' when the head used them), for a final refit.
TestFeatures = Callable[[Images], tuple[np.ndarray, np.ndarray | None]]


# --------------------------------------------------------------------------- probes


@dataclass
class _Read:
    """One forward pass of a pretrained net over the training side, for its probes: the last
    layer's pooled features in the first ``split`` columns, then (with ``stages``) the middle
    stages' pooled on a grid; ``seconds`` it took."""

    model: nn.Module
    pretrained: str
    preprocessing: dict
    config: TrainConfig
    extract: nn.Module
    stages: list[int] | None
    feats: np.ndarray
    flipped: np.ndarray | None
    split: int
    seconds: float

    def columns(self, start: int, stop: int | None) -> tuple[np.ndarray, np.ndarray | None]:
        return self.feats[:, start:stop], _cols(self.flipped, start, stop)

    def test_features(self, ctx: Context, start: int, stop: int | None, transform=None) -> TestFeatures:
        """The test side's features in the same columns (and kernel map) as the head's: a final refit."""
        size, dcfg = self.config.input_size, self.preprocessing

        def extract_test(test_images: Images) -> tuple[np.ndarray, np.ndarray | None]:
            c = test_images.cache(size, dcfg["interpolation"])
            f = features(ctx, self.extract, c, dcfg, budget=False)[:, start:stop]
            g = (
                None
                if self.flipped is None
                else features(ctx, self.extract, c.flip(-1), dcfg, budget=False)[:, start:stop]
            )
            if transform is not None:
                f, g = transform(f), (None if g is None else transform(g))
            return f, g

        return extract_test


def probes(
    ctx: Context, architecture: str, size: int, fit_pos: list[int], val_pos: list[int]
) -> list[Candidate]:
    """Frozen ImageNet features + a linear head chosen by cross-validation on the fit part: one on
    the last layer's pooled features and, where the net has stages to tap (taps.py), one on its
    middle stages pooled on a grid. One forward pass extracts both feature sets."""
    t0 = time.monotonic()
    candidate = Candidate(f"probe:{architecture}@{size}", "probe", architecture, size)
    read = _read(ctx, candidate, t0)
    if read is None:
        return [candidate]
    kinds = ctx.config.candidates or DEFAULT_CANDIDATES
    made = []
    if "probe" in kinds or read.stages is None:
        made.append(_last_layer_probe(ctx, candidate, read, fit_pos, val_pos))
    if read.stages is None:
        return made
    if "probe_mid" in kinds:
        made.append(_mid_layer_probe(ctx, candidate.name, read, fit_pos, val_pos))
    if "probe_kernel" in kinds and len(fit_pos) > 1:
        made.append(_kernel_probe(ctx, candidate.name, read, fit_pos, val_pos))
    return made


def _read(ctx: Context, candidate: Candidate, t0: float) -> _Read | None:
    """The features ``candidate``'s net gives the training side (and its mirror images, when the
    budget allows), or None with a note on ``candidate`` (no weights, out of time)."""
    architecture, size = candidate.architecture, candidate.input_size
    pretrained = ctx.config.pretrained if ctx.config.pretrained != "none" else "auto"
    model, used, dcfg, _ = build(ctx, architecture, pretrained)
    if used is None:
        candidate.note = "no pretrained weights available"
        return None
    kinds = ctx.config.candidates or DEFAULT_CANDIDATES
    stages = taps.default_stages(model) if MID_KINDS & set(kinds) else None
    device = next(model.parameters()).device
    extract = model if stages is None else taps.Taps(model, stages, taps.TAPS_GRID, 1, final=True).to(device)
    cache = ctx.images.cache(size, dcfg["interpolation"])
    t_fwd = time.monotonic()
    feats = features(ctx, extract, cache, dcfg)
    if feats is None:
        candidate.note = "stopped: out of time budget"
        candidate.seconds = time.monotonic() - t0
        return None
    ctx.forward_rate[architecture] = len(cache) * (size / 224.0) ** 2 / max(time.monotonic() - t_fwd, 1e-3)
    flipped = None
    if ctx.flip and ctx.budget.left() > 2 * ctx.seconds_for(architecture, size, len(cache)) + RESERVE_S:
        flipped = features(ctx, extract, cache.flip(-1), dcfg)
    config = dataclasses.replace(
        ctx.config, architecture=architecture, input_size=size, pretrained=pretrained
    )
    shared = time.monotonic() - t0
    split = feats.shape[1] if stages is None else extract.final_dim
    return _Read(model, used, dcfg, config, extract, stages, feats, flipped, split, shared)


def _last_layer_probe(
    ctx: Context, candidate: Candidate, read: _Read, fit_pos: list[int], val_pos: list[int]
) -> Candidate:
    """The head on the last layer's pooled features, written into the net's own classifier."""
    candidate.model, candidate.pretrained, candidate.preprocessing = (
        read.model,
        read.pretrained,
        read.preprocessing,
    )
    candidate.config = read.config
    x, x_flipped = read.columns(0, read.split)
    layer = read.model.get_classifier()
    _fit_head(ctx, candidate, layer, x, x_flipped, fit_pos, val_pos, read.test_features(ctx, 0, read.split))
    candidate.seconds += read.seconds
    return candidate


def _mid_layer_probe(
    ctx: Context, name: str, read: _Read, fit_pos: list[int], val_pos: list[int]
) -> Candidate:
    """A linear head on the middle stages, served as the stages it reads and that head."""
    served = taps.Taps(read.model, read.stages, taps.TAPS_GRID, ctx.num_outputs)
    x, x_flipped = read.columns(read.split, None)
    return _served_by_taps(
        ctx, name, "", read, served, served.head, x, x_flipped, time.monotonic(),
        read.test_features(ctx, read.split, None), fit_pos, val_pos,
    )  # fmt: skip


def _kernel_probe(ctx: Context, name: str, read: _Read, fit_pos: list[int], val_pos: list[int]) -> Candidate:
    """An RBF-kernel head (kernel.py) on the middle stages."""
    started = time.monotonic()
    x, x_flipped = read.columns(read.split, None)
    # The kernel's landmarks and standardisation come from the fit part's features only, so
    # the validation images are scored as unseen ones.
    mapping = kernel.KernelMap(x[fit_pos], seed=ctx.config.seed)
    served = taps.Taps(read.model, read.stages, taps.TAPS_GRID, ctx.num_outputs, kernel=mapping.landmarks)
    mapping.load_into(served.head)
    mapped = mapping.transform(x), mapping.transform(x_flipped)
    return _served_by_taps(
        ctx, name, ":rbf", read, served, served.head.linear, *mapped, started,
        read.test_features(ctx, read.split, None, mapping.transform), fit_pos, val_pos,
        landmarks=mapping.landmarks, gamma=mapping.gamma,
    )  # fmt: skip


def _served_by_taps(
    ctx: Context,
    name: str,
    suffix: str,
    read: _Read,
    served: taps.Taps,
    layer: nn.Linear,
    x: np.ndarray,
    x_flipped: np.ndarray | None,
    started: float,
    extract_test: TestFeatures,
    fit_pos: list[int],
    val_pos: list[int],
    **hyper,
) -> Candidate:
    """A probe served as the stages it reads and ``layer`` (its head's linear layer)."""
    device = next(read.model.parameters()).device
    mid = Candidate(f"{name}:mid-layers{suffix}", "probe", read.config.architecture, read.config.input_size)
    mid.model, mid.pretrained = served.to(device).eval(), read.pretrained
    mid.preprocessing, mid.config = read.preprocessing, read.config
    mid.taps_spec = taps.spec(served, read.config.architecture)
    _fit_head(ctx, mid, layer, x, x_flipped, fit_pos, val_pos, extract_test)
    mid.hyper = {**mid.hyper, **hyper}
    mid.seconds = time.monotonic() - started + read.seconds
    return mid


def _cols(x: np.ndarray | None, start: int, stop: int | None) -> np.ndarray | None:
    return None if x is None else x[:, start:stop]


def _fit_head(
    ctx: Context,
    candidate: Candidate,
    layer: nn.Linear,
    x: np.ndarray,
    flipped: np.ndarray | None,
    fit_pos: list[int],
    val_pos: list[int],
    extract_test: TestFeatures | None = None,
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
        candidate.final_refit = head_final_refit(ctx, layer, x, flipped, y, head.hyper, extract_test)
    candidate.seconds = time.monotonic() - t0


def head_final_refit(
    ctx: Context,
    layer: nn.Linear,
    x: np.ndarray,
    flipped: np.ndarray | None,
    y: np.ndarray,
    hyper: dict,
    extract_test: TestFeatures,
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


# --------------------------------------------------------------------------- whole nets


def net(
    ctx: Context,
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
    model, used, dcfg, warnings = build(ctx, architecture, pretrained)
    ctx.warnings.extend(warnings)
    name = f"{kind}:{architecture}@{size}"
    cfg = _net_config(ctx, kind, architecture, size, pretrained, used, len(fit_pos), epochs)
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
    candidate.final_refit = _net_final_refit(ctx, candidate, model, pretrained)
    if run.validation is not None:
        candidate.score, candidate.thresholds = run.validation["score"], run.validation["thresholds"]
        candidate.val_outputs = run.validation["outputs"]
        truth = probe.targets_array(ctx.task_type, ctx.y_train[val_t])
        candidate.nll = probe.cv_loss(ctx.task_type, run.validation["outputs"], truth)
    candidate.seconds = time.monotonic() - t0
    return candidate


def _net_config(
    ctx: Context,
    kind: str,
    architecture: str,
    size: int,
    pretrained: str,
    used: str | None,
    n_fit: int,
    epochs: int | None,
) -> TrainConfig:
    """The config a net trains with: epochs, learning rate and BatchNorm handling resolved."""
    cfg = dataclasses.replace(ctx.config, architecture=architecture, input_size=size, pretrained=pretrained)
    if epochs is not None:
        cfg.epochs = epochs
    elif kind == "scratch":
        # A net from scratch needs a few hundred steps whatever the data size; on a small set
        # that is many epochs, each a fraction of a second (the deadline still rules).
        steps_per_epoch = max(1, math.ceil(n_fit / cfg.batch_size))
        cfg.epochs = max(cfg.epochs, math.ceil(cfg.scratch_min_steps / steps_per_epoch))
    if cfg.lr is None:
        cfg.lr = 1e-4 if used else 2e-3
    if cfg.freeze_bn is None:
        cfg.freeze_bn = used is not None
    return cfg


def _net_final_refit(
    ctx: Context, candidate: Candidate, model: nn.Module, pretrained: str
) -> Callable[[Images, torch.Tensor], None]:
    """A net's ``final_refit``: the same net trained afresh on both sides for the epochs this run
    kept, then copied into ``model`` in place (a blend or a pooling wrapper holds it)."""
    kind, architecture, size, source = (
        candidate.kind,
        candidate.architecture,
        candidate.input_size,
        candidate.source,
    )

    def final_refit(test_images: Images, y_test: torch.Tensor) -> None:
        joined = dataclasses.replace(
            ctx, images=Joined(ctx.images, test_images), y_train=torch.cat([ctx.y_train, y_test]),
            budget=Budget(time.monotonic(), None),
        )  # fmt: skip
        everything = list(range(len(joined.y_train)))
        kept = candidate.hyper.get("best_epoch") or len(candidate.history) or None
        again = net(joined, kind, architecture, size, pretrained, everything, [], None, kept, source=source)
        model.load_state_dict(again.model.state_dict())
        candidate.hyper["final_refit_epochs"] = len(again.history)

    return final_refit


def fixed(ctx: Context) -> Candidate:
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
    candidate = net(ctx, "fixed", cfg.architecture, size, cfg.pretrained, everything, [], deadline)
    if ctx.task_type == "multi_label":
        prep = candidate.preprocessing
        cache = ctx.images.cache(size, prep["interpolation"])
        logits, _ = forward_outputs(candidate.model, cache, mean=prep["mean"], std=prep["std"])
        candidate.thresholds = metrics.best_thresholds(
            postprocess(logits, "multi_label").numpy(), ctx.y_train.numpy()
        )
    return candidate


def refit(ctx: Context, winner: Candidate, fit_pos: list[int], left: Callable[[], float]) -> None:
    """Train the winning net again on the whole training side (validation slice included) for
    the epochs its validation run kept, when that fits in the budget; else keep it as it is."""
    everything = list(range(len(ctx.y_train)))
    epochs = winner.hyper.get("best_epoch") or len(winner.history)
    if ctx.budget.deadline is not None and refit_seconds(winner, len(fit_pos), len(everything)) > left():
        winner.hyper["refit"] = False
        return
    deadline = None if ctx.budget.deadline is None else time.monotonic() + left()
    pretrained = winner.config.pretrained if winner.config else "none"
    again = net(
        ctx, winner.kind, winner.architecture, winner.input_size, pretrained, everything, [], deadline,
        epochs, source=winner.source,
    )  # fmt: skip
    winner.model, winner.config = again.model, again.config
    winner.final_refit = again.final_refit
    winner.hyper["refit"] = True
    winner.seconds += again.seconds


def refit_seconds(trained: Candidate, n_fit: int, n_all: int) -> float:
    """What retraining the net ``trained`` on all ``n_all`` images for its kept epochs should take."""
    epochs = trained.hyper.get("best_epoch") or len(trained.history)
    return trained.seconds * n_all / max(n_fit, 1) * epochs / max(len(trained.history), 1)


# --------------------------------------------------------------------------- blends


def pool_source(tried: list[Candidate], size: int) -> tuple[int, str] | None:
    """The first probe's cache, when ``size`` divides its side: a net from scratch then learns from
    it average-pooled, and can be served blended with that probe from the probe's input."""
    for c in tried:
        if c.kind == "probe" and c.model is not None and c.input_size > size and c.input_size % size == 0:
            return c.input_size, c.preprocessing["interpolation"]
    return None


def blend_of(
    ctx: Context, first: Candidate, second: Candidate, val_pos: list[int], use_loss: bool
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
    assemble(ctx, candidate)
    candidate.seconds = time.monotonic() - t0
    return candidate


def assemble(ctx: Context, candidate: Candidate) -> None:
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
