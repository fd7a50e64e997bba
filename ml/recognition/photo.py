"""The photo candidate: frozen features of several ImageNet backbones side by side, one linear head.

Photos (images larger than the small-image side) with a few dozen images a label are served well
by a linear head on frozen features (multi.py). Which backbones stay, the head's regularisation and
the handling of mirror images are chosen, and the candidate's score estimated, by k-fold
cross-validation over the whole training side, not on the 20 % validation slice.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from ml.recognition import multi, probe
from ml.recognition.candidates import head_final_refit
from ml.recognition.context import NATIVE_SIZE, Candidate, Context, Images, build, features

logger = logging.getLogger(__name__)

# The photo candidate's backbones, whose frozen features, each at its native size, one linear head
# reads side by side. When the budget cannot pay for all of them the last ones are left out.
# Chosen by 5-fold cross-validation within the photo benchmark's training sides
# (bench/dev_photos.py; BENCHMARKS.md), mean of three: centre-cropped, lite0 + lite2 with mirror
# averaging 0.749, lite0 + lite1 + lite2 0.749 (a third more work), lite2 alone 0.721; squashed,
# lite2 alone 0.762 and lite0 + lite2 0.737. Which of the two sets a task keeps is left to its own
# cross-validation (``probe_multi``).
MULTI_ARCHITECTURES = ("tf_efficientnet_lite2", "tf_efficientnet_lite0")
# ... reading the whole photo squashed to the square, not its centre crop (lite2: 0.762 against
# 0.721 above; the benchmark's photos are 307 x 172, a centre crop drops 44 % of each).
MULTI_RESIZE = "squash"
# Below this many training images the head is chosen and scored by k-fold cross-validation over
# the whole training side with this many folds (3 above it).
SMALL_DATA = 2000
SMALL_DATA_FOLDS = 5


def multi_plan(ctx: Context, seconds: float) -> list[str]:
    """The photo candidate's backbones whose feature extraction (mirrored copies included) fits in
    ``seconds``, in MULTI_ARCHITECTURES order; the first one whatever it costs."""
    images = len(ctx.y_train) * (2 if ctx.flip else 1)
    chosen: list[str] = []
    for arch in MULTI_ARCHITECTURES:
        cost = sum(ctx.seconds_for(a, NATIVE_SIZE[a], images) for a in [*chosen, arch])
        if not chosen or cost <= seconds:
            chosen.append(arch)
    return chosen


def multi_serving_seconds(ctx: Context, architectures: Sequence[str], images: int) -> float:
    """What the photo candidate's forward over ``images`` costs (both mirror images: the most)."""
    return sum(ctx.seconds_for(a, NATIVE_SIZE[a], 2 * images) for a in architectures)


def short_names(architectures: Sequence[str]) -> str:
    """``lite2+lite0``: the photo candidate's backbones as its name shows them."""
    return "+".join(a.replace("tf_efficientnet_", "") for a in architectures)


@dataclass
class _Backbones:
    """The backbones that have pretrained weights, in plan order, and how each is fed."""

    nets: list[nn.Module]
    architectures: list[str]
    preprocessing: list[dict]
    sources: list[str]  # what each one's weights came from
    side: int = 0  # the input all of them read: the largest native size

    def module(self, ctx: Context, count: int) -> multi.MultiProbe:
        """The first ``count`` backbones as one served module (each resizes the input to its own
        native size): what the served module does with the predictor's input."""
        archs, dcfgs = self.architectures[:count], self.preprocessing[:count]
        return multi.MultiProbe(
            self.nets[:count], sizes=[NATIVE_SIZE[a] for a in archs],
            means=[d["mean"] for d in dcfgs], stds=[d["std"] for d in dcfgs],
            num_outputs=ctx.num_outputs, input_size=self.side,
        ).to(ctx.device).eval()  # fmt: skip


def probe_multi(ctx: Context, plan: Sequence[str]) -> Candidate:
    """Frozen features of several ImageNet backbones, each at its native size, side by side, and
    one linear head on them (multi.py): the head, and whether mirrored images are extra rows or
    averaged with the originals, chosen by k-fold cross-validation over the whole training side,
    which also gives the candidate's score. The head is fit on the whole training side at once.
    ``plan``: the backbones to try (``multi_plan``)."""
    t0 = time.monotonic()
    pretrained = ctx.config.pretrained if ctx.config.pretrained != "none" else "auto"
    backbones = _backbones(ctx, plan, pretrained)
    archs = backbones.architectures
    candidate = Candidate(
        f"probe_multi:{short_names(archs) or 'none'}", "probe_multi", multi.MULTI_ARCHITECTURE, 0
    )
    if not backbones.nets:
        candidate.note = "no pretrained weights available"
        return candidate
    # Every backbone reads the one cache at the largest native size, resized inside the module to
    # its own: what the served module does with the predictor's input, whichever backbones stay.
    backbones.side = max(NATIVE_SIZE[a] for a in archs)
    module = backbones.module(ctx, len(archs))
    prep = {**backbones.preprocessing[0], "resize": MULTI_RESIZE}
    cache = ctx.images.cache(module.input_size, prep["interpolation"], MULTI_RESIZE)
    feats, flipped = _member_features(ctx, candidate.name, module, archs, cache, prep)
    if not feats:
        candidate.note = "stopped: out of time budget"
        candidate.seconds = time.monotonic() - t0
        return candidate
    ctx.report({"candidate": candidate.name, "stage": "choosing the head by cross-validation"})
    y = probe.targets_array(ctx.task_type, ctx.y_train)
    folds = SMALL_DATA_FOLDS if len(y) < SMALL_DATA else probe.CV_FOLDS
    count, x, x_flipped, head, estimate, tried_sets = _best_backbone_set(ctx, archs, feats, flipped, y, folds)
    logger.info("multi head by %d-fold CV: %.1f s", folds, time.monotonic() - t0)
    if count < len(archs):  # fewer backbones won, or the budget stopped the extraction early
        module = backbones.module(ctx, count)
        candidate.name = f"probe_multi:{short_names(archs[:count])}"
    module.flip_average = head.hyper["flip"] == "average"
    probe.to_linear(head, module.head)
    _describe(ctx, candidate, module, backbones, count, head, estimate, tried_sets, prep, pretrained)

    def extract_test(test_images: Images) -> tuple[np.ndarray, np.ndarray | None]:
        # The test side's features through the same backbones, mirror images too when used.
        test_cache = test_images.cache(module.input_size, prep["interpolation"], MULTI_RESIZE)
        views = [multi.MemberView(module, i) for i in range(count)]
        extra = np.concatenate([features(ctx, v, test_cache, prep, budget=False) for v in views], axis=1)
        if x_flipped is None:
            return extra, None
        mirrored = [features(ctx, v, test_cache.flip(-1), prep, budget=False) for v in views]
        return extra, np.concatenate(mirrored, axis=1)

    candidate.final_refit = head_final_refit(ctx, module.head, x, x_flipped, y, head.hyper, extract_test)
    candidate.seconds = time.monotonic() - t0
    return candidate


def _backbones(ctx: Context, plan: Sequence[str], pretrained: str) -> _Backbones:
    """The planned backbones that have pretrained weights, without their classifiers."""
    found = _Backbones([], [], [], [])
    for arch in plan:
        model, used, dcfg, _ = build(ctx, arch, pretrained)
        if used is None:
            continue
        found.sources.append(used)
        model.reset_classifier(0)
        found.nets.append(model.eval())
        found.architectures.append(arch)
        found.preprocessing.append(dcfg)
    return found


def _member_features(
    ctx: Context, name: str, module: multi.MultiProbe, archs: list[str], cache, prep: dict
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Each backbone's features of the training side (and of its mirror images when flips are on),
    through the served module's own member paths; fewer backbones when the budget runs out."""
    feats: list[np.ndarray] = []
    flipped: list[np.ndarray | None] = []
    for i, arch in enumerate(archs):
        started = time.monotonic()
        view = multi.MemberView(module, i)
        f = features(ctx, view, cache, prep)
        g = features(ctx, view, cache.flip(-1), prep) if ctx.flip and f is not None else None
        if f is None or (ctx.flip and g is None):
            break  # out of time: the backbones done so far make the candidate
        rate_images = len(cache) * (2 if ctx.flip else 1) * (NATIVE_SIZE[arch] / 224.0) ** 2
        ctx.forward_rate[arch] = rate_images / max(time.monotonic() - started, 1e-3)
        feats.append(f)
        flipped.append(g)
        logger.info("%s features: %.1f s", arch, time.monotonic() - started)
        ctx.report({"candidate": name, "stage": f"features of {arch} ({i + 1} of {len(archs)})"})
    return feats, flipped


def _best_backbone_set(ctx: Context, archs: list[str], feats, flipped, y: np.ndarray, folds: int):
    """The first backbone alone, then with the next ones beside it: each head and its mirror
    handling by k-fold CV on the same folds; the better estimate is kept, fewer backbones on a tie.
    Returns (count, features, mirrored features, head, estimate, each set's score)."""
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
        tried_sets[short_names(archs[:count])] = None if estimate is None else round(estimate.score, 4)
        key = (-math.inf, 0.0) if estimate is None else (estimate.score, -estimate.loss)
        if best is None or key > best[0]:
            best = (key, count, x, x_flipped, head, estimate)
    _, count, x, x_flipped, head, estimate = best
    return count, x, x_flipped, head, estimate, tried_sets


def _describe(
    ctx: Context,
    candidate: Candidate,
    module: multi.MultiProbe,
    backbones: _Backbones,
    count: int,
    head: probe.LinearHead,
    estimate: probe.CVEstimate | None,
    tried_sets: dict,
    prep: dict,
    pretrained: str,
) -> None:
    """Fill in ``candidate``: its cross-validated score, the choices made, the module to serve."""
    archs, dcfgs = backbones.architectures[:count], backbones.preprocessing[:count]
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
    candidate.model, candidate.pretrained = module, ", ".join(sorted(set(backbones.sources[:count])))
    candidate.input_size = module.input_size
    candidate.preprocessing = prep
    candidate.config = dataclasses.replace(
        ctx.config, architecture=multi.MULTI_ARCHITECTURE, input_size=module.input_size, pretrained=pretrained
    )
    candidate.multi_spec = multi.spec(module, archs, [d["mean"] for d in dcfgs], [d["std"] for d in dcfgs])
