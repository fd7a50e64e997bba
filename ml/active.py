"""Active learning: which unlabelled images a person should label next.

Two plain-array steps, used by apps/suggestions after a version is trained and by the benchmark
(bench/bench_active_learning.py):

1. ``uncertainty_*``: how unsure the model is of each image, in [0, 1] (1 = a coin toss).
2. ``select_diverse``: an order over the images that starts with the most uncertain ones but keeps
   them apart in descriptor space (greedy k-center over the most uncertain candidates), so the
   first twenty are not twenty near-copies of one confusing picture.

No torch, no Django: numpy arrays in, numpy arrays out.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Boxes scored below this are noise a detector always emits; they say nothing about its doubt.
BOX_FLOOR = 0.05


def uncertainty_margin(probs: np.ndarray) -> np.ndarray:
    """``1 - (p_best - p_second)`` per row of single-label class probabilities (N, C).

    Margin rather than entropy: it looks only at the two classes the model hesitates between, so
    many small probabilities of unrelated classes do not make an easy image look hard.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0:
        return np.zeros(probs.shape[0] if probs.ndim else 0)
    if probs.shape[1] < 2:
        return np.zeros(probs.shape[0])
    top = np.sort(probs, axis=1)[:, -2:]
    return np.clip(1.0 - (top[:, 1] - top[:, 0]), 0.0, 1.0)


def uncertainty_multi_label(probs: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
    """Per row of independent tag probabilities (N, C): the tag closest to its decision threshold
    decides (1 when a probability sits exactly on the threshold, 0 when all are at 0 or 1)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] == 0:
        return np.zeros(probs.shape[0] if probs.ndim else 0)
    cut = np.full(probs.shape[1], 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    cut = np.clip(cut, 1e-6, 1 - 1e-6)
    # Distance to the threshold, scaled so that 0 and 1 are both "certain" whatever the threshold.
    span = np.where(probs >= cut, 1.0 - cut, cut)
    closeness = 1.0 - np.abs(probs - cut) / span
    return np.clip(closeness.max(axis=1), 0.0, 1.0)


def uncertainty_boxes(box_scores: list[list[float]]) -> np.ndarray:
    """Per image, from its detected boxes' scores: the box nearest a coin toss decides
    (``1 - |2p - 1|``); an image where nothing scored above ``BOX_FLOOR`` gets 0.5, since the
    detector may be missing objects it has never seen."""
    out = np.zeros(len(box_scores))
    for i, scores in enumerate(box_scores):
        kept = [float(s) for s in scores if s >= BOX_FLOOR]
        out[i] = 0.5 if not kept else max(1.0 - abs(2.0 * s - 1.0) for s in kept)
    return out


def coarse_descriptor(data: bytes, side: int = 8) -> np.ndarray:
    """A stand-in descriptor for a model that has none (the detector): the picture's colour layout
    at ``side`` x ``side``, centred and L2-normalised, so near-copies of one scene sit close."""
    with Image.open(io.BytesIO(data)) as image:
        small = np.asarray(image.convert("RGB").resize((side, side), Image.BILINEAR), dtype=np.float64)
    flat = small.reshape(-1) / 255.0
    flat = flat - flat.mean()
    norm = np.linalg.norm(flat)
    return flat / norm if norm > 0 else flat


def select_diverse(
    uncertainty: np.ndarray,
    descriptors: np.ndarray,
    count: int,
    *,
    candidates: int | None = None,
    weight: float = 0.5,
) -> np.ndarray:
    """The indices of ``count`` images to label first, in order.

    Among the ``candidates`` most uncertain images (default ``5 * count``), greedily take the one
    that maximises ``(1 - weight) * uncertainty + weight * distance`` where ``distance`` is its
    distance to the nearest image already taken, scaled by the largest such distance (greedy
    k-center, softened by uncertainty). The first pick is the most uncertain image. Descriptors
    are compared by Euclidean distance; L2-normalised descriptors (what the predictors return)
    make that a cosine distance.
    """
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    n = uncertainty.shape[0]
    count = max(0, min(int(count), n))
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    pool_size = min(n, max(count, candidates if candidates is not None else 5 * count))
    # Stable sort: equal uncertainty keeps the caller's order (reproducible suggestions).
    order = np.argsort(-uncertainty, kind="stable")[:pool_size]
    feats = np.asarray(descriptors, dtype=np.float64)[order]
    unsure = uncertainty[order]
    taken = [0]
    nearest = np.linalg.norm(feats - feats[0], axis=1)
    while len(taken) < count:
        scale = nearest.max()
        spread = nearest / scale if scale > 0 else np.zeros_like(nearest)
        score = (1.0 - weight) * unsure + weight * spread
        score[taken] = -np.inf
        pick = int(np.argmax(score))
        taken.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(feats - feats[pick], axis=1))
    return order[np.asarray(taken, dtype=np.int64)]
