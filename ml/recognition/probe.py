"""Linear heads on frozen pretrained features, fitted with scikit-learn.

A "probe" keeps an ImageNet backbone as it is and fits only the last layer: logistic
regression (multi_class; one per label for multi_label) or ridge regression (regression) on the
pooled features, with the regularisation and the use of mirrored copies chosen by k-fold
cross-validation on the data it is given. The result is plain weights in feature space that
``to_linear`` folds, standardisation included, into the net's own classifier, so the served model
is still one timm net and one forward pass.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from ml.recognition import metrics

logger = logging.getLogger(__name__)

# Inverse regularisation strengths tried for logistic heads, and ridge penalties (on
# standardised features, so one grid fits every backbone). Both run from the strongest
# regularisation to the weakest: a tie goes to the simpler head.
C_GRID: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
ALPHA_GRID: tuple[float, ...] = (10000.0, 1000.0, 100.0, 10.0, 1.0)
CV_FOLDS = 3
MAX_ITER = 200
TOL = 1e-3
FINAL_MAX_ITER = 2000
FINAL_TOL = 1e-4
# Bias of a multi_label output whose label is never (or always) present in the data it saw.
CONSTANT_LOGIT = 8.0


@dataclass
class LinearHead:
    """``outputs = features @ weight.T + bias`` in raw feature space (standardisation folded in)."""

    weight: np.ndarray  # (K, D)
    bias: np.ndarray  # (K,)
    hyper: dict  # what cross-validation chose: C or alpha, flip
    # Out-of-fold outputs of the chosen head (one row per training row: its prediction by the fold
    # that held it out) and the folds' row indices; None when no cross-validation ran.
    oof: np.ndarray | None = None
    folds: list[np.ndarray] | None = None


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > 1e-6, scale, 1.0)


def _logistic(strength: float, warm: LogisticRegression | None, final: bool) -> LogisticRegression:
    """A logistic regression at C=``strength``, warm-started from the previous C of the path.

    Cross-validation fits are quick and a little loose; the head that is kept (``final``) is
    solved to convergence: a cold start at a weak regularisation needs many more iterations.
    """
    if final:
        return LogisticRegression(C=strength, max_iter=FINAL_MAX_ITER, tol=FINAL_TOL)
    if warm is None:
        return LogisticRegression(C=strength, max_iter=MAX_ITER, tol=TOL, warm_start=True)
    warm.set_params(C=strength)
    return warm


def _fit_raw(
    task_type: str,
    z: np.ndarray,
    y: np.ndarray,
    strength: float,
    num_outputs: int,
    warm: dict | None = None,
    final: bool = False,
):
    """(weight, bias) on standardised features z. y: class index, multi-hot rows or a value.

    ``warm`` (a dict kept by the caller across a path of increasing C) holds the previous
    models, so each step starts from the last solution: the whole path costs little more
    than its last fit.
    """
    warm = {} if warm is None else warm
    with warnings.catch_warnings():
        # A capped lbfgs on a tiny set may stop a little short; the score decides, not the flag.
        warnings.simplefilter("ignore", ConvergenceWarning)
        if task_type == "regression":
            model = Ridge(alpha=strength).fit(z, y)
            return model.coef_.reshape(1, -1), np.array([model.intercept_], dtype=np.float64)
        if task_type == "multi_class":
            weight = np.zeros((num_outputs, z.shape[1]))
            bias = np.zeros(num_outputs)
            present = np.unique(y)
            if len(present) == 1:  # one class only: predict it
                bias[present[0]] = CONSTANT_LOGIT
                return weight, bias
            model = warm[0] = _logistic(strength, warm.get(0), final).fit(z, y)
            if len(present) == 2:
                # Binary logistic: softmax([0, t]) = sigmoid(t), so the first class gets zeros.
                weight[present[1]], bias[present[1]] = model.coef_[0], model.intercept_[0]
            else:
                weight[present], bias[present] = model.coef_, model.intercept_
            # Classes absent from this data keep a very low logit.
            absent = np.setdiff1d(np.arange(num_outputs), present)
            bias[absent] = -CONSTANT_LOGIT
            return weight, bias
        weight = np.zeros((num_outputs, z.shape[1]))
        bias = np.zeros(num_outputs)
        for j in range(num_outputs):
            column = y[:, j]
            if column.min() == column.max():
                bias[j] = CONSTANT_LOGIT if column[0] > 0.5 else -CONSTANT_LOGIT
                continue
            model = warm[j] = _logistic(strength, warm.get(j), final).fit(z, column.astype(int))
            weight[j], bias[j] = model.coef_[0], model.intercept_[0]
        return weight, bias


def _outputs(task_type: str, z: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Probabilities (multi_class softmax, multi_label sigmoid) or values (regression, (N,))."""
    logits = z @ weight.T + bias
    if task_type == "regression":
        return logits[:, 0]
    if task_type == "multi_label":
        return 1.0 / (1.0 + np.exp(-logits))
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def cv_loss(task_type: str, out: np.ndarray, y: np.ndarray) -> float:
    """What cross-validation minimises: log loss (classification) or mean squared error."""
    if task_type == "regression":
        return float(np.mean((out - y) ** 2))
    eps = 1e-7
    if task_type == "multi_class":
        return float(-np.mean(np.log(out[np.arange(len(y)), y] + eps)))
    return float(-np.mean(y * np.log(out + eps) + (1 - y) * np.log(1 - out + eps)))


def _folds(
    task_type: str, y: np.ndarray, seed: int, folds: int = CV_FOLDS
) -> list[tuple[np.ndarray, np.ndarray]]:
    n = len(y)
    if n < 2:  # nothing to hold out: the first choice of the grid stands
        return []
    k = min(folds, n)
    if task_type == "multi_class":
        smallest = np.bincount(y).astype(float)
        smallest = smallest[smallest > 0].min()
        if smallest >= 2:
            # A label with fewer images than folds is left out of some folds' held-out rows (and
            # scikit-learn says so); k stays, so every fold still trains on (k - 1) / k of the rows.
            # (scikit-learn refuses more folds than the largest label has images.)
            largest = int(np.bincount(y).max())
            splitter = StratifiedKFold(n_splits=int(min(k, largest)), shuffle=True, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return list(splitter.split(np.zeros(n), y))
    return list(KFold(n_splits=max(2, k), shuffle=True, random_state=seed).split(np.zeros(n)))


def blas_threads():
    """BLAS (scikit-learn, SciPy) on as many threads as torch, as a context: the trainer's thread
    setting holds for every head fit. Left to itself OpenBLAS spins one thread per core, and on a
    busy machine those spinning threads made a 7 s probe take 40 s."""
    return threadpool_limits(limits=max(torch.get_num_threads(), 1), user_api="blas")


def fit_linear_head(*args, **kwargs) -> LinearHead:
    """``_fit_linear_head`` on ``blas_threads()``."""
    with blas_threads():
        return _fit_linear_head(*args, **kwargs)


def _fit_linear_head(
    task_type: str,
    features: np.ndarray,
    targets: np.ndarray,
    num_outputs: int,
    *,
    flipped: np.ndarray | None = None,
    seed: int = 0,
    fixed: dict | None = None,
    folds: int = CV_FOLDS,
    average_flips: bool = False,
) -> LinearHead:
    """Fit a linear head on ``features`` (N, D), choosing its regularisation by k-fold CV.

    ``folds`` sets k. With ``average_flips`` the mirrored features are averaged with the originals,
    for training and held-out rows alike, instead of being extra training rows (the head is then
    served on averaged features: ``hyper["flip"] == "average"``); cross-validation still decides
    between that and no mirrors. On the photo development folds averaging was at or above extra
    rows for every backbone set (bench/dev_photos.py). The returned head carries the chosen
    setting's out-of-fold outputs (``oof``), so its cross-validated score costs nothing more.

    ``flipped`` (N, D), the features of the mirrored images, are tried as extra training rows
    (never as held-out rows); they are kept only when cross-validation says they help. Targets:
    class indices (N,), multi-hot (N, L) or standardised values (N,). ``fixed`` (a head's
    ``hyper``) skips cross-validation and refits with those choices.
    """
    key = "alpha" if task_type == "regression" else "C"
    grid = ALPHA_GRID if task_type == "regression" else C_GRID
    flips: tuple = (False, True) if flipped is not None else (False,)
    if flipped is not None and average_flips:
        flips = (False, "average")
    if fixed is not None:
        chosen = fixed["flip"] if flipped is not None else False
        grid, flips = (fixed[key],), (chosen if chosen == "average" else bool(chosen),)
    splits = _folds(task_type, targets, seed, folds) if len(grid) * len(flips) > 1 else []
    losses: dict[tuple[float, Any], list[float]] = {(s, f): [] for s in grid for f in flips}
    errors: dict[tuple[float, Any], list[float]] = {(s, f): [] for s in grid for f in flips}
    oof: dict[tuple[float, Any], np.ndarray] = {}
    averaged = (features + flipped) / 2 if "average" in flips else None
    for train, held in splits:
        for flip in flips:
            rows = averaged if flip == "average" else features
            x_train = rows[train]
            y_train = targets[train]
            if flip is True:
                x_train = np.concatenate([x_train, flipped[train]])
                y_train = np.concatenate([y_train, y_train])
            mean, scale = _standardise(x_train)
            z_train, z_held = (x_train - mean) / scale, (rows[held] - mean) / scale
            warm: dict = {}  # grid is increasing C: each fit starts from the previous solution
            for strength in grid:
                weight, bias = _fit_raw(task_type, z_train, y_train, strength, num_outputs, warm)
                out = _outputs(task_type, z_held, weight, bias)
                if (strength, flip) not in oof:
                    oof[(strength, flip)] = np.zeros((len(targets), *out.shape[1:]))
                oof[(strength, flip)][held] = out
                losses[(strength, flip)].append(cv_loss(task_type, out, targets[held]))
                if task_type == "multi_class":
                    errors[(strength, flip)].append(float(np.mean(out.argmax(axis=1) != targets[held])))
    # multi_class picks on held-out errors (the metric users read), log loss breaking ties; the
    # others on their loss. Remaining ties go to the first in grid order: stronger
    # regularisation, no flips.
    strength, flip = min(
        losses,
        key=lambda k: (float(np.mean(errors[k])) if errors[k] else 0.0, float(np.mean(losses[k] or [0.0]))),
    )
    x, y = features, targets
    if flip == "average":
        x = averaged if averaged is not None else (features + flipped) / 2
    elif flip:
        x, y = np.concatenate([x, flipped]), np.concatenate([y, y])
    mean, scale = _standardise(x)
    weight, bias = _fit_raw(task_type, (x - mean) / scale, y, strength, num_outputs, final=True)
    # Fold the standardisation into the layer: W z + b with z = (x - mean) / scale.
    weight = weight / scale
    bias = bias - weight @ mean
    return LinearHead(
        weight=weight,
        bias=bias,
        hyper={key: strength, "flip": flip if flip == "average" else bool(flip)},
        oof=oof.get((strength, flip)),
        folds=[held for _, held in splits] or None,
    )


def per_image_loss(
    task_type: str, out: np.ndarray, truth: np.ndarray, thresholds: Sequence[float] | None = None
) -> np.ndarray:
    """One number per image, lower is better: 0/1 error (multi_class), the share of labels wrong at
    ``thresholds`` (multi_label; 0.5 without), the absolute error (regression)."""
    if task_type == "multi_class":
        return (out.argmax(axis=1) != truth).astype(np.float64)
    if task_type == "multi_label":
        cut = np.asarray(thresholds if thresholds is not None else [0.5] * out.shape[1])
        return ((out >= cut) != (truth >= 0.5)).mean(axis=1).astype(np.float64)
    return np.abs(out - truth).astype(np.float64)


def predict(task_type: str, head: LinearHead, features: np.ndarray) -> np.ndarray:
    """The head's outputs on raw features: what the net with ``to_linear`` applied returns."""
    return _outputs(task_type, features, head.weight, head.bias)


def to_linear(head: LinearHead, layer: torch.nn.Linear) -> None:
    """Copy the head into the net's classifier (a Linear with matching shape)."""
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(head.weight, dtype=layer.weight.dtype))
        layer.bias.copy_(torch.as_tensor(head.bias, dtype=layer.bias.dtype))


def validation_score(
    task_type: str, out: np.ndarray, truth: np.ndarray, target_std: float = 1.0
) -> tuple[float, list[float] | None]:
    """(score, thresholds): higher is better. accuracy (multi_class); macro F1 at per-label
    thresholds chosen on the same data (multi_label); minus the MAE in target units (regression)."""
    if task_type == "multi_class":
        return float((out.argmax(axis=1) == truth).mean()), None
    if task_type == "multi_label":
        thresholds = metrics.best_thresholds(out, truth)
        chosen = out >= np.asarray(thresholds)
        return macro_f1(chosen, truth >= 0.5), thresholds
    return -float(np.mean(np.abs(out - truth))) * target_std, None


def macro_f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean F1 over labels (a label with no positives and no predictions counts as 1)."""
    scores: list[float] = []
    for j in range(truth.shape[1]):
        tp = float(np.sum(predicted[:, j] & truth[:, j]))
        fp = float(np.sum(predicted[:, j] & ~truth[:, j]))
        fn = float(np.sum(~predicted[:, j] & truth[:, j]))
        scores.append(1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def targets_array(task_type: str, targets: Sequence | torch.Tensor) -> np.ndarray:
    """ml.recognition.train's target tensor as numpy: int classes, float multi-hot rows, float values."""
    array = targets.numpy() if isinstance(targets, torch.Tensor) else np.asarray(targets)
    return array.astype(np.int64) if task_type == "multi_class" else array.astype(np.float64)


@dataclass
class CVEstimate:
    """A head's cross-validated score: over every row's out-of-fold output, the spread of the
    folds' own scores (what one held-out slice of a fold's size would be off by), the log loss, and
    for multi_label the thresholds chosen on the out-of-fold outputs."""

    score: float
    fold_sd: float
    loss: float
    folds: int
    thresholds: list[float] | None


def cv_estimate(
    task_type: str, head: LinearHead, targets: np.ndarray, target_std: float = 1.0
) -> CVEstimate | None:
    """The cross-validated estimate of ``head`` (None when no cross-validation ran)."""
    if head.oof is None or not head.folds:
        return None
    score, thresholds = validation_score(task_type, head.oof, targets, target_std)
    per_fold = [
        validation_score(task_type, head.oof[held], targets[held], target_std)[0] for held in head.folds
    ]
    sd = float(np.std(per_fold, ddof=1)) if len(per_fold) > 1 else 0.0
    return CVEstimate(score, sd, cv_loss(task_type, head.oof, targets), len(head.folds), thresholds)
