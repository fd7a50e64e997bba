"""The automatic search's steps: the candidates ``ml.recognition.recipe`` tries, in its order, each
when the images, the kinds asked for (``TrainConfig.candidates``) and the time left allow it.

``Search`` holds one search's state: the fit part and the validation slice, the candidates tried,
and ``reserve``, the seconds kept back from the budget for what must still happen after the step
at hand (the winner's test-side evaluation and saving; the retraining of a net likely to win).
"""

from __future__ import annotations

import logging
import time

from ml.config import DEFAULT_CANDIDATES, MAX_INPUT_SIZE, MIN_PRETRAINED_INPUT_SIZE
from ml.data import auto_input_size
from ml.recognition.candidates import MID_KINDS, blend_of, net, pool_source, probes, refit_seconds
from ml.recognition.context import NATIVE_SIZE, PROBE_ARCHITECTURES, RESERVE_S, Candidate, Context
from ml.recognition.photo import multi_plan, multi_serving_seconds, probe_multi
from ml.recognition.selection import MIN_VALIDATION_FOR_LOSS, TIE_ORDER, choose, validation_split

logger = logging.getLogger(__name__)

SCRATCH_ARCHITECTURE = "resnet10t"
FINETUNE_ARCHITECTURE = "tf_efficientnet_lite0"
# Images whose median shorter side is at most this are "small": a net from scratch at their
# own size is a candidate (scans, digits, icons).
SMALL_IMAGE_SIDE = 64
PROBE_SIZES = (260, 224, 192, 160, 128)
# The lite0 probe's largest size on small images when its middle-layer variant runs: upscaled
# scans hold no more detail at 224 px, and the middle stages read them as well at 128 (Fashion-
# MNIST slices apart from the benchmark's: 0.875 at 128, 0.874 at 224), at a third of the cost,
# which goes to the net from scratch.
SMALL_PROBE_SIZE = 128
# Share of the budget left the photo candidate's feature extraction may plan for.
MULTI_SHARE = 0.75
MIN_FINETUNE_EPOCHS = 3


def pretrained_input_size(median_side: float, architecture: str) -> int:
    """Input side for a pretrained net: the images' own scale, but within [128, native]."""
    native = NATIVE_SIZE.get(architecture, MAX_INPUT_SIZE)
    side = 32 * round(max(median_side, MIN_PRETRAINED_INPUT_SIZE) / 32)
    return int(min(max(side, MIN_PRETRAINED_INPUT_SIZE), native))


class Search:
    """One automatic search: its validation slice, what it tried, the seconds it keeps back."""

    def __init__(self, ctx: Context, fit_pos: list[int], val_pos: list[int]):
        self.ctx = ctx
        self.fit_pos, self.val_pos = fit_pos, val_pos
        self.tried: list[Candidate] = []
        self.n = len(ctx.y_train)
        self.small = ctx.median_side <= SMALL_IMAGE_SIDE
        self.reserve = RESERVE_S
        self.pretrained_ok = ctx.config.pretrained != "none"
        self.kinds = ctx.config.candidates or DEFAULT_CANDIDATES
        self.asked = ctx.config.candidates is not None
        # The log loss breaks ties only on a slice large enough to measure it.
        self.use_loss = len(val_pos) >= MIN_VALIDATION_FOR_LOSS

    def left(self) -> float:
        """Seconds the step at hand may spend."""
        return self.ctx.budget.left() - self.reserve

    def done(self, candidate: Candidate) -> None:
        self.tried.append(candidate)
        logger.info(
            "candidate %s: validation %s in %.1fs", candidate.name, candidate.score, candidate.seconds
        )
        self.ctx.report(
            {
                "candidate": candidate.name,
                "validation_score": candidate.score,
                "percent": round(100.0 * self.ctx.budget.fraction(), 1),
            }
        )

    # ----------------------------------------------------------------------- the steps

    def photo_probe(self) -> Candidate | None:
        """Photos (larger than small images): several backbones' frozen features under one head,
        chosen and scored by k-fold cross-validation over the whole training side; the candidate,
        or None when it was not tried or did not train. Its forward over the test side is kept back."""
        ctx = self.ctx
        if not (self.pretrained_ok and not self.small and "probe_multi" in self.kinds):
            return None
        plan = multi_plan(ctx, MULTI_SHARE * self.left())
        self.reserve = RESERVE_S + multi_serving_seconds(ctx, plan, ctx.n_test)
        self.done(probe_multi(ctx, plan))
        photo = self.tried[-1] if self.tried[-1].model is not None else None
        if photo is None:
            self.reserve = RESERVE_S
        return photo

    def lite0_probe(self) -> None:
        """The lite0 probe: deterministic, cheap for what it gives, and on small images the
        upscaled ImageNet features are a strong baseline a net from scratch must beat."""
        ctx, kinds = self.ctx, self.kinds
        if not (self.pretrained_ok and ("probe" in kinds or MID_KINDS & set(kinds))):
            return
        cheap = self.small and bool(MID_KINDS & set(kinds)) and "scratch" in kinds
        self._lite_probe(
            PROBE_ARCHITECTURES[0], 0.35, fallback=True, at_most=SMALL_PROBE_SIZE if cheap else 0
        )
        self.reserve = RESERVE_S + ctx.seconds_for(PROBE_ARCHITECTURES[0], 224, ctx.n_test)

    def scratch(self) -> None:
        """A small net from scratch at the images' own size (small images, or when asked for): strong
        on scans, digits and icons. When it learned from a probe's pooled cache it will most likely
        be served (alone or blended): the time to retrain it on the whole training side is kept back."""
        if not ("scratch" in self.kinds and self.val_pos and (self.small or self.asked)):
            return
        self._scratch(0.6 if self.pretrained_ok and len(self.kinds) > 1 else 1.0)
        if self.tried[-1].model is not None and self.tried[-1].source:
            self.reserve += refit_seconds(self.tried[-1], len(self.fit_pos), self.n)

    def large_probe(self) -> None:
        """The lite2 probe, at a size no smaller than lite0's on small images."""
        if not (self.pretrained_ok and self.val_pos and "probe_large" in self.kinds):
            return
        first_probe = next((c.input_size for c in self.tried if c.kind == "probe" and c.model is not None), 0)
        self._lite_probe(
            PROBE_ARCHITECTURES[1], 0.5, fallback=not self.tried, at_least=first_probe if self.small else 0
        )

    def finetune(self) -> None:
        """Fine-tuning lite0 at ImageNet-like scale, when at least a few epochs fit in what is left."""
        ctx = self.ctx
        if not (self.pretrained_ok and self.val_pos and "finetune" in self.kinds):
            return
        arch = FINETUNE_ARCHITECTURE
        size = pretrained_input_size(ctx.median_side, arch)
        epoch_s = ctx.seconds_for(arch, size, len(self.fit_pos), train=True)
        if ctx.budget.deadline is None or self.left() >= MIN_FINETUNE_EPOCHS * epoch_s + 2.0:
            deadline = None if ctx.budget.deadline is None else time.monotonic() + self.left()
            self.done(
                net(ctx, "finetune", arch, size, ctx.config.pretrained, self.fit_pos, self.val_pos, deadline)
            )

    def scratch_if_nothing_trained(self) -> None:
        """No pretrained weights anywhere (or pretrained="none" with large images): a net from
        scratch on everything the budget leaves."""
        ctx = self.ctx
        if self.tried and not all(c.model is None for c in self.tried):
            return
        size = auto_input_size([int(ctx.median_side)])
        deadline = None if ctx.budget.deadline is None else time.monotonic() + max(self.left(), 1.0)
        self.done(
            net(ctx, "scratch", SCRATCH_ARCHITECTURE, size, "none", self.fit_pos, self.val_pos, deadline)
        )

    def blends(self) -> None:
        """A probe and a net from scratch are wrong on different images: their mixed outputs. The
        better probe of the size the net learned from joins it, chosen as the winner is: the higher
        score, then (on a large enough slice) the lower log loss, then the first tried."""
        if not ("blend" in self.kinds and self.val_pos):
            return
        for trained in [
            c for c in self.tried if c.source and c.model is not None and c.val_outputs is not None
        ]:
            mates = [
                c for c in self.tried
                if c.kind == "probe" and c.model is not None and c.val_outputs is not None
                and c.input_size == trained.source[0]
            ]  # fmt: skip
            if mates:
                best = choose(mates, TIE_ORDER, self.use_loss)
                self.done(blend_of(self.ctx, best, trained, self.val_pos, self.use_loss))

    def free_all_but(self, winner: Candidate) -> None:
        """Free the losers' nets before the winner is evaluated."""
        for candidate in self.tried:
            if (
                candidate.model is not None
                and candidate is not winner
                and all(candidate is not m for m in winner.members)
            ):
                candidate.model = None
                candidate.finalize = None

    # ----------------------------------------------------------------------- helpers

    def _scratch(self, share: float) -> None:
        ctx = self.ctx
        size = auto_input_size([int(ctx.median_side)])
        deadline = None if ctx.budget.deadline is None else time.monotonic() + share * self.left()
        source = pool_source(self.tried, size) if "blend" in self.kinds else None
        arch = SCRATCH_ARCHITECTURE
        self.done(
            net(ctx, "scratch", arch, size, "none", self.fit_pos, self.val_pos, deadline, source=source)
        )

    def _lite_probe(
        self, arch: str, share: float, fallback: bool, at_least: int = 0, at_most: int = 0
    ) -> None:
        # The largest ImageNet-like size whose feature extraction (mirrored copies included)
        # costs at most ``share`` of what is left; the smallest size anyway when ``fallback``.
        # Not below ``at_least`` (small images): upscaled scans hold no more detail for a larger
        # net at a smaller size (measured on Fashion-MNIST: lite2 at 128 px under lite0 at 224 on
        # 2 of 2 slices), and it takes the time the net from scratch needs to be retrained.
        ctx = self.ctx
        sizes = [s for s in PROBE_SIZES if s <= min(NATIVE_SIZE[arch], at_most or NATIVE_SIZE[arch])]
        factor = 2 if ctx.flip else 1
        size = next(
            (s for s in sizes if ctx.seconds_for(arch, s, self.n * factor) <= share * self.left()), None
        )
        if size is None and fallback:
            size = sizes[-1]
        if size is not None and size < at_least:
            logger.info("%s probe skipped: %d px affordable, the probe before saw %d", arch, size, at_least)
            size = None
        if size is not None:
            for candidate in probes(ctx, arch, size, self.fit_pos, self.val_pos):
                self.done(candidate)


def begin(ctx: Context) -> Search:
    """A search with its validation slice (described in ``ctx.validation_info``) and, when there is a
    deadline, this machine's measured speed to plan with."""
    fit_pos, val_pos = validation_split(ctx)
    ctx.validation_info = {
        "images": len(val_pos),
        "fraction": ctx.config.validation_fraction,
        "metric": {"multi_class": "accuracy", "multi_label": "macro_f1", "regression": "-mae"}[ctx.task_type],
    }
    if not val_pos:
        # Too few images to hold any out: one candidate, nothing to choose.
        ctx.validation_info["note"] = "too few training images for a validation slice"
    search = Search(ctx, fit_pos, val_pos)
    if ctx.budget.deadline is not None:
        ctx.calibrate()
    return search
