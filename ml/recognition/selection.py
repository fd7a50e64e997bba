"""Choosing among the candidates on the validation slice, and making the winner ready to serve.

The validation slice is carved from the training side (stratified, seeded). The highest score on it
wins; ties go by the validation log loss when the slice is large enough, then by kind
(``TIE_ORDER``). A cross-validated candidate (the photo probe) stays unless another beats it on the
slice's own images by more than the paired noise. The winning nets are then retrained on the whole
training side, and a blend is rebuilt from its refitted members.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ml.recognition import probe
from ml.recognition.candidates import assemble, refit
from ml.recognition.context import Candidate, Context, Images, strata
from ml.split import stratified_split

# Equal validation scores (and, on a large enough slice, equal log loss): the first kind here
# wins, a blend always last. Small grey images used to put the net from scratch first, a rule
# read off the digit benchmark's own test side; re-derived on two-class Fashion-MNIST sets of
# 2 x 25 from its test file, which no benchmark scores (bench/dev_small_grey.py), the probe
# generalised best on 4 of 5 pairs (mean 0.911 against the net's 0.869), so it goes first there too.
TIE_ORDER = ("probe_multi", "probe", "finetune", "scratch", "blend")
# A candidate scored on the validation slice replaces a cross-validated one only when its paired
# gain on the slice's images is this many standard errors above zero (about 97.7 % one-sided).
PAIRED_Z = 2.0
# Below this many validation images the log loss does not break ties: on a slice this small it
# only says which model is the most confident, and the probes' confident heads won every tie.
MIN_VALIDATION_FOR_LOSS = 30


def validation_split(ctx: Context) -> tuple[list[int], list[int]]:
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
        list(range(n)), strata(ctx.task_type, raw), [False] * n,
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


def choose_winner(
    ctx: Context, tried: list[Candidate], photo: Candidate | None, val_pos: list[int], use_loss: bool
) -> Candidate:
    """The candidate to serve, among those that trained: the photo probe against the best of the
    others (``against_cross_validated``) when there is one, else the best by ``choose``."""
    usable = [c for c in tried if c.model is not None]
    # Highest validation score wins. Ties (frequent on a small validation slice) go by the log
    # loss when the slice is large enough to measure it, then to the kind that is steadier on
    # such data: a linear head before a fine-tuned or a scratch net.
    order = TIE_ORDER
    ctx.validation_info["ties"] = {"loss": use_loss, "order": list(order)}
    if photo is not None:
        return against_cross_validated(ctx, photo, [c for c in usable if c is not photo], use_loss, val_pos)
    return choose(usable, order, use_loss)


def against_cross_validated(
    ctx: Context, cross_validated: Candidate, others: list[Candidate], use_loss: bool, val_pos: list[int]
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


def refit_winner(
    ctx: Context, winner: Candidate, fit_pos: list[int], val_pos: list[int], left: Callable[[], float]
) -> None:
    """Make the winner ready to serve: a net trained on the fit part learns again from the whole
    training side (within ``left()`` seconds); a blend's nets do, and the blend is rebuilt from
    them; a net trained on a probe's pooled cache is served behind the pooling."""
    if winner.kind == "blend":
        _refit_blend(ctx, winner, fit_pos, left)
    elif winner.kind in ("scratch", "finetune") and val_pos:
        refit(ctx, winner, fit_pos, left)
    if winner.source:  # a net trained on a probe's pooled cache is served behind the pooling
        assemble(ctx, winner)


def _refit_blend(ctx: Context, winner: Candidate, fit_pos: list[int], left: Callable[[], float]) -> None:
    """Each member learns from the whole training side as it would alone, then the mix is rebuilt;
    the blend's ``finalize`` and ``final_refit`` are its members'."""
    for member in winner.members:
        if member.kind in ("scratch", "finetune"):
            refit(ctx, member, fit_pos, left)
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
    assemble(ctx, winner)
