"""Evaluation metrics with scikit-learn, shaped for the API's model-version payload."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

DEFAULT_THRESHOLD = 0.5


def _f(value) -> float | None:
    return None if value is None else float(value)


def best_thresholds(probs: np.ndarray, truth: np.ndarray) -> list[float]:
    """Per-label threshold that maximises F1 on (probs, truth), both (N, L).

    Candidates are midpoints between sorted distinct probabilities, so the chosen
    threshold separates the data with a margin instead of sitting on a sample. A label
    with no positive (or no sample) keeps 0.5: there is nothing to tune it on.
    """
    thresholds = []
    for j in range(truth.shape[1] if truth.ndim == 2 else 0):
        y, p = truth[:, j].astype(bool), probs[:, j]
        if not y.any():
            thresholds.append(DEFAULT_THRESHOLD)
            continue
        values = np.unique(p)
        candidates = np.concatenate([[values[0] / 2], (values[:-1] + values[1:]) / 2, [DEFAULT_THRESHOLD]])
        best_t, best_f1 = DEFAULT_THRESHOLD, -1.0
        for t in candidates:
            pred = p >= t
            tp = np.sum(pred & y)
            f1 = 2 * tp / (np.sum(pred) + np.sum(y))
            # Ties go to the threshold closest to 0.5: least surprising for unseen data.
            if f1 > best_f1 + 1e-12 or (abs(f1 - best_f1) <= 1e-12 and abs(t - 0.5) < abs(best_t - 0.5)):
                best_t, best_f1 = float(t), float(f1)
        thresholds.append(best_t)
    return thresholds


def _per_label(labels, precision, recall, f1, support, thresholds) -> list[dict]:
    return [
        {
            "label_id": label["id"],
            "name": label["name"],
            "precision": _f(precision[i]),
            "recall": _f(recall[i]),
            "f1": _f(f1[i]),
            "support": int(support[i]),
            "threshold": None if thresholds is None else _f(thresholds[i]),
        }
        for i, label in enumerate(labels)
    ]


def _no_test_side(labels: Sequence[dict], thresholds: Sequence[float] | None) -> dict:
    """Every image was used for training: nothing to score, so scores are None, not 0."""
    none = [None] * len(labels)
    return {
        "accuracy": None,
        "precision": None,
        "recall": None,
        "f1": None,
        "per_label": _per_label(labels, none, none, none, [0] * len(labels), thresholds),
        "confusion_matrix": None,
    }


def classification_metrics(probs: np.ndarray, truth: Sequence[int], labels: Sequence[dict]) -> dict:
    """multi_class: probs (N, L) softmax outputs, truth (N,) label indices."""
    if len(truth) == 0:
        return _no_test_side(labels, None)
    y_true = np.asarray(truth, dtype=np.int64)
    y_pred = probs.argmax(axis=1)
    idx = list(range(len(labels)))
    p, r, f, s = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=idx, average=None, zero_division=0
    )
    mp, mr, mf, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=idx, average="macro", zero_division=0
    )
    cm = skm.confusion_matrix(y_true, y_pred, labels=idx)
    return {
        "accuracy": _f(skm.accuracy_score(y_true, y_pred)),
        "precision": _f(mp),
        "recall": _f(mr),
        "f1": _f(mf),
        "per_label": _per_label(labels, p, r, f, s, None),
        "confusion_matrix": {
            "labels": [label["name"] for label in labels],
            "matrix": cm.astype(int).tolist(),
        },
    }


def multi_label_metrics(
    probs: np.ndarray, truth: np.ndarray, labels: Sequence[dict], thresholds: Sequence[float]
) -> dict:
    """multi_label: probs and truth (N, L); accuracy is exact-match (subset) accuracy."""
    if len(truth) == 0:
        return _no_test_side(labels, thresholds)
    y_true = truth.astype(int)
    y_pred = (probs >= np.asarray(thresholds)[None, :]).astype(int)
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    mp, mr, mf, _ = skm.precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    matrices = skm.multilabel_confusion_matrix(y_true, y_pred)
    return {
        "accuracy": _f(skm.accuracy_score(y_true, y_pred)),
        "precision": _f(mp),
        "recall": _f(mr),
        "f1": _f(mf),
        "per_label": _per_label(labels, p, r, f, s, thresholds),
        # One [[tn, fp], [fn, tp]] matrix per label, in label order.
        "confusion_matrix": {
            "labels": [label["name"] for label in labels],
            "matrices": [m.astype(int).tolist() for m in matrices],
        },
    }


def regression_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """regression: de-normalised predictions and targets, (N,)."""
    if len(truth) == 0:
        return {"accuracy": None, "mae": None, "rmse": None, "r2": None}
    r2 = skm.r2_score(truth, predicted) if len(truth) >= 2 else float("nan")
    return {
        "accuracy": None,
        "mae": _f(skm.mean_absolute_error(truth, predicted)),
        "rmse": _f(math.sqrt(skm.mean_squared_error(truth, predicted))),
        # r2 is undefined for one sample or a constant target: None rather than NaN in JSON.
        "r2": None if not np.isfinite(r2) else _f(r2),
    }
