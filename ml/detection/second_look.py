"""A second look at the labels: a linear classifier on each box's own backbone features.

On hard development scenes FCOS found the objects but mislabelled many: class-agnostic mAP@0.5
0.823 against 0.673 with labels, and 129 of 185 test boxes labelled right; a logistic regression
on the trained detector's backbone levels (strides 8, 16, 32), pooled inside each box
(``postprocess.pooled``), labelled 85-86 % of them right (BENCHMARKS.md, "A box head that cannot
die"; this look's own figures: "A second look at the labels"). After the training,
``fit_labeller`` fits one on the training boxes (each image and its mirror, every box as drawn
and jittered by up to ``JITTER`` of its size); the detector's boxes then get every label k,
scored FCOS's score times (1 - own) * q_k ** weight + own * [k is FCOS's label], q the
classifier's probabilities (``postprocess.looked``). The pair (own, weight) is chosen on the
validation slice among ``CHOICES``, and the look is kept only when it raises the slice's mAP@0.5
(ml/detection/detector.py). numpy and scikit-learn; no torch, no Django.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

JITTER = 0.1  # a training box's edges move by up to this share of its width and height
C = 0.1  # the logistic regression's inverse regularisation (0.01-1 gave 85.4-85.9 %: one seed)
# (own, weight) pairs tried on the validation slice: FCOS's own label's share, and the power of the
# classifier's probability.
CHOICES = ((0.0, 0.25), (0.0, 0.5), (0.0, 1.0), (0.25, 0.5), (0.5, 0.5), (0.5, 1.0))
STRIDES = (8, 16, 32)  # the backbone levels pooled (ml/detection/detector.py's OUT_INDICES)
MIN_BOXES_PER_LABEL = 2  # fewer training boxes of a label than this: no second look


def jittered(boxes: np.ndarray, rng: np.random.Generator, share: float = JITTER) -> np.ndarray:
    """``boxes`` (K, 4) with each edge moved by up to ``share`` of the box's width or height."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = np.tile(boxes[:, 2:] - boxes[:, :2], 2)
    moved = boxes + rng.uniform(-share, share, boxes.shape) * size
    # An edge never crosses its opposite: at least a pixel wide and high.
    moved[:, 2] = np.maximum(moved[:, 2], moved[:, 0] + 1)
    moved[:, 3] = np.maximum(moved[:, 3], moved[:, 1] + 1)
    return moved


def fit_labeller(features: np.ndarray, labels: Sequence[int], num_labels: int, c: float = C) -> dict | None:
    """The classifier the spec's ``second_look`` holds (without ``own`` and ``weight``): ``coef``
    (num_labels, F) and ``intercept`` (num_labels,) on the raw pooled features (the standardisation
    folded in), the ``strides`` pooled. None when it cannot help: one label, or a label with fewer
    than ``MIN_BOXES_PER_LABEL`` training boxes."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_labels)
    if num_labels < 2 or counts.min() < MIN_BOXES_PER_LABEL:
        return None
    x = np.asarray(features, dtype=np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=c, max_iter=3000).fit((x - mean) / std, labels)
    coef = np.zeros((num_labels, x.shape[1]))
    intercept = np.zeros(num_labels)
    if len(model.classes_) == 2:  # one row: p(second) = sigmoid(z) = softmax of (-z / 2, z / 2)
        rows = np.stack([-model.coef_[0] / 2, model.coef_[0] / 2])
        biases = np.array([-model.intercept_[0] / 2, model.intercept_[0] / 2])
    else:
        rows, biases = model.coef_, model.intercept_
    # Every label has boxes (the counts above), so every row is filled.
    for row, bias, label in zip(rows, biases, model.classes_, strict=True):
        coef[label] = row / std
        intercept[label] = bias - float(np.dot(row / std, mean))
    return {
        "strides": list(STRIDES),
        "coef": np.round(coef, 7).tolist(),
        "intercept": np.round(intercept, 7).tolist(),
        "boxes": int(len(labels)),
    }
