"""What a detector's ``prob`` means: the chance that the box is right, fitted on the validation slice.

FCOS's score, sqrt(sigmoid(class logit) * sigmoid(centre-ness)), ranks boxes well but is no
probability: a location on the background with a class score of 0.15 and a centre-ness of 0.9
scores 0.37. With mosaic and copy-paste views the background of easy development scenes scored
0.35-0.47 and the objects 0.74-0.87, so detect's default ``keep_prob`` of 0.3 answered about five
boxes for each object there (precision 0.18 at recall 1.0; BENCHMARKS.md, "What prob means").

After the training the detector runs on its validation slice (scenes it never trained on); every
box it answers down to the score floor is a hit (IoU >= 0.5 with a true box of its label not matched
by a better box: ``evaluate.hits``) or a miss. A logistic fit on the score's logit (Platt scaling)
maps a score to the share of hits among boxes scoring like it:

    prob = sigmoid(slope * logit(score) + intercept)

The fit is regularised towards the identity (slope 1, intercept 0) by a Gaussian prior worth about
one box (``PRIOR``), so a slice with few boxes moves the scores little and an empty one not at all.
Only an increasing map is kept (slope > 0): the boxes' order, hence the NMS, the boxes and mAP, are
the same; only the probabilities answered, and which boxes pass a cut-off, change. The map is
applied by ``postprocess.calibrated``, which the ONNX path and the download bundle run too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .evaluate import hits
from .postprocess import logit

# The Gaussian prior's weight: the penalty (slope - 1)^2 + intercept^2 is added to the negative log
# likelihood with this factor; 1 is about one box's worth of evidence.
PRIOR = 1.0
# Fewer validation boxes than this (or no hit, or no miss): no calibration, the scores are answered.
MIN_BOXES = 10
MIN_SLOPE = 0.05  # a flatter fit would squeeze every box to one probability


def fit_calibration(scores: Sequence[float], hit: Sequence[bool], prior: float = PRIOR) -> dict | None:
    """The map from raw scores to the chance of a hit, or None when the boxes cannot support one
    (too few, all hits or all misses, or a fit that would not keep the order)."""
    from scipy.optimize import minimize

    scores = np.asarray(scores, dtype=np.float64)
    hit = np.asarray(hit, dtype=np.float64)
    if len(scores) < MIN_BOXES or hit.sum() == 0 or hit.sum() == len(hit):
        return None
    x = logit(scores)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        slope, intercept = params
        z = slope * x + intercept
        # -log p(hit) and -log p(miss) without overflow: log(1 + e^-z) and log(1 + e^z).
        nll = np.sum(hit * np.logaddexp(0.0, -z) + (1.0 - hit) * np.logaddexp(0.0, z))
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid(z), stable
        gradient = np.array([np.sum((p - hit) * x), np.sum(p - hit)])
        penalty = prior * ((slope - 1.0) ** 2 + intercept**2)
        gradient += prior * 2.0 * np.array([slope - 1.0, intercept])
        return float(nll + penalty), gradient

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    slope, intercept = (float(v) for v in result.x)
    if not result.success or not np.isfinite([slope, intercept]).all() or slope < MIN_SLOPE:
        return None
    return {
        "slope": round(slope, 6),
        "intercept": round(intercept, 6),
        "boxes": int(len(scores)),
        "hits": int(hit.sum()),
    }


def calibration_from_predictions(truth: Sequence[dict], predicted: Sequence[dict]) -> dict | None:
    """``fit_calibration`` on every predicted box of the images (``truth`` per image ``boxes`` and
    ``labels``; ``predicted`` per image ``boxes``, ``scores``, ``labels`` as raw scores)."""
    scores, hit = hits(truth, predicted)
    return fit_calibration(scores, hit)
