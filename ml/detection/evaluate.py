"""Detection metrics as Azure Custom Vision and AWS report them, in numpy alone.

mAP@0.5: per label, all-point interpolated average precision (the area under the precision/recall
curve made monotone, VOC 2010+), then the mean over the labels that have true boxes on the test
side. Precision and recall at a probability ``threshold`` and IoU 0.5 (greedy matching, most
probable first). Per image: true and predicted boxes with the matches, worst images first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IOU_THRESHOLD = 0.5


def iou(box: Sequence[float], boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``[x1, y1, x2, y2]`` box with each row of ``boxes`` (N, 4)."""
    if len(boxes) == 0:
        return np.zeros(0)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP: precision made non-increasing, integrated over recall."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    changes = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[changes + 1] - mrec[changes]) * mpre[changes + 1]))


def _match(true_boxes, true_labels, pred_boxes, pred_labels, pred_scores, min_score: float):
    """Greedy matching at IoU 0.5, most probable prediction first, one true box per prediction.

    Returns (is_tp per prediction considered, matched true index or -1, the indexes considered)."""
    order = [
        i
        for i in np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable")
        if pred_scores[i] >= min_score
    ]
    used = np.zeros(len(true_boxes), dtype=bool)
    truth = np.asarray(true_boxes, dtype=np.float64).reshape(-1, 4)
    t_labels = np.asarray(true_labels)
    tp, matched = [], []
    for i in order:
        candidates = np.where((t_labels == pred_labels[i]) & ~used)[0]
        best, best_iou = -1, IOU_THRESHOLD
        if len(candidates):
            overlaps = iou(pred_boxes[i], truth[candidates])
            j = int(np.argmax(overlaps))
            if overlaps[j] >= best_iou:
                best = int(candidates[j])
        if best >= 0:
            used[best] = True
        tp.append(best >= 0)
        matched.append(best)
    return tp, matched, order


def hits(truth: Sequence[dict], predicted: Sequence[dict]) -> tuple[list[float], list[bool]]:
    """Every predicted box's score and whether it is a hit (greedy matching at IoU 0.5, most
    probable first, as mAP counts), over all images."""
    scores: list[float] = []
    hit: list[bool] = []
    for t, p in zip(truth, predicted, strict=True):
        labels = list(t["labels"])
        tp, _, order = _match(t["boxes"], labels, p["boxes"], p["labels"], p["scores"], min_score=-1.0)
        scores.extend(float(p["scores"][i]) for i in order)
        hit.extend(bool(x) for x in tp)
    return scores, hit


def evaluate_detections(
    truth: Sequence[dict], predicted: Sequence[dict], num_labels: int, threshold: float = 0.5
) -> dict:
    """Score ``predicted`` (per image ``boxes``, ``scores``, ``labels``) against ``truth`` (per image
    ``boxes``, ``labels``), labels being indexes ``0..num_labels-1``.

    Returns ``map50`` (None when no test image has a true box), ``per_label`` (``ap``,
    ``precision``, ``recall``, ``true``, ``predicted`` at ``threshold``), overall ``precision`` and
    ``recall`` at ``threshold``, and ``images``: per image the true and predicted boxes (``correct``
    on predictions over the threshold), ``false_positives``, ``false_negatives``, worst first.
    """
    # AP per label, over all test images, every prediction counted.
    per_label_scores: list[list[tuple[float, bool]]] = [[] for _ in range(num_labels)]
    true_counts = np.zeros(num_labels, dtype=int)
    tp_at = np.zeros(num_labels, dtype=int)
    pred_at = np.zeros(num_labels, dtype=int)
    images = []
    for index, (t, p) in enumerate(zip(truth, predicted, strict=True)):
        t_labels = list(t["labels"])
        for label in t_labels:
            true_counts[label] += 1
        tp, _, order = _match(t["boxes"], t_labels, p["boxes"], p["labels"], p["scores"], min_score=-1.0)
        for is_tp, i in zip(tp, order, strict=True):
            per_label_scores[p["labels"][i]].append((float(p["scores"][i]), bool(is_tp)))
        # At the threshold: the deployed operating point.
        tp_thr, matched, order_thr = _match(
            t["boxes"], t_labels, p["boxes"], p["labels"], p["scores"], threshold
        )
        found = {j for j in matched if j >= 0}
        for is_tp, i in zip(tp_thr, order_thr, strict=True):
            pred_at[p["labels"][i]] += 1
            tp_at[p["labels"][i]] += int(is_tp)
        false_positives = sum(not x for x in tp_thr)
        false_negatives = len(t_labels) - len(found)
        images.append(
            {
                "position": index,
                "true": [
                    {"label": int(label), "bound_box": list(box), "found": j in found}
                    for j, (box, label) in enumerate(zip(t["boxes"], t_labels, strict=True))
                ],
                "predicted": [
                    {
                        "label": int(p["labels"][i]),
                        "bound_box": list(p["boxes"][i]),
                        "prob": round(float(p["scores"][i]), 5),
                        "correct": bool(is_tp),
                    }
                    for is_tp, i in zip(tp_thr, order_thr, strict=True)
                ],
                "false_positives": false_positives,
                "false_negatives": false_negatives,
                "correct": false_positives == 0 and false_negatives == 0,
            }
        )
    per_label = []
    aps = []
    for label in range(num_labels):
        scored = sorted(per_label_scores[label], key=lambda s: -s[0])
        ap = None
        if true_counts[label] > 0:
            hits = np.array([hit for _, hit in scored], dtype=float)
            tps, fps = np.cumsum(hits), np.cumsum(1.0 - hits)
            recall = tps / true_counts[label] if len(hits) else np.zeros(0)
            precision = tps / np.maximum(tps + fps, 1e-12) if len(hits) else np.zeros(0)
            ap = average_precision(recall, precision)
            aps.append(ap)
        per_label.append(
            {
                "ap": None if ap is None else round(ap, 5),
                "precision": round(tp_at[label] / pred_at[label], 5) if pred_at[label] else None,
                "recall": round(tp_at[label] / true_counts[label], 5) if true_counts[label] else None,
                "true": int(true_counts[label]),
                "predicted": int(pred_at[label]),
            }
        )
    total_pred, total_true = int(pred_at.sum()), int(true_counts.sum())
    images.sort(key=lambda r: (-(r["false_positives"] + r["false_negatives"]), r["position"]))
    return {
        "map50": round(float(np.mean(aps)), 5) if aps else None,
        "per_label": per_label,
        "precision": round(int(tp_at.sum()) / total_pred, 5) if total_pred else None,
        "recall": round(int(tp_at.sum()) / total_true, 5) if total_true else None,
        "images": images,
    }
