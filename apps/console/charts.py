"""Presentation of a version's metrics as the console draws them: no database, no rules.

A confusion matrix becomes rows of cells with a background shade; a training history becomes the
points of an SVG polyline per series (loss, validation score), each scaled into the chart's box.
"""

from __future__ import annotations

CHART_WIDTH = 360
CHART_HEIGHT = 160
CHART_PAD = 8


def heatmap(confusion: dict | None) -> dict | None:
    """``{"labels", "rows": [{"label", "cells": [{"count", "alpha", "diagonal"}]}]}`` for a
    multi_class confusion matrix (true label per row, predicted per column); shades are relative to
    the row's total, so a small class shows its mistakes as clearly as a large one."""
    if not confusion or "matrix" not in confusion:
        return None
    labels = confusion["labels"]
    rows = []
    for i, counts in enumerate(confusion["matrix"]):
        total = sum(counts) or 1
        cells = [
            {"count": count, "alpha": round(count / total, 3), "diagonal": i == j}
            for j, count in enumerate(counts)
        ]
        rows.append({"label": labels[i], "cells": cells, "total": sum(counts)})
    return {"labels": labels, "rows": rows}


def label_matrices(confusion: dict | None) -> list[dict]:
    """multi_label: one ``{label, tn, fp, fn, tp}`` per label from its 2x2 matrix."""
    if not confusion or "matrices" not in confusion:
        return []
    return [
        {"label": label, "tn": m[0][0], "fp": m[0][1], "fn": m[1][0], "tp": m[1][1]}
        for label, m in zip(confusion["labels"], confusion["matrices"], strict=True)
    ]


def _series(values: list[float | None]) -> str:
    points = [(i, v) for i, v in enumerate(values) if isinstance(v, int | float)]
    if not points:
        return ""
    low = min(v for _, v in points)
    high = max(v for _, v in points)
    span = (high - low) or 1.0
    steps = max(len(values) - 1, 1)
    width, height = CHART_WIDTH - 2 * CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD
    return " ".join(
        f"{CHART_PAD + width * i / steps:.1f},{CHART_PAD + height * (1 - (v - low) / span):.1f}"
        for i, v in points
    )


def curves(history: list[dict] | None) -> dict | None:
    """Polyline points for the loss and the validation score per epoch (each on its own scale)."""
    if not history:
        return None
    loss = [record.get("loss") for record in history]
    score = [record.get("val_score") for record in history]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "loss": _series(loss),
        "score": _series(score),
        "epochs": len(history),
        "last_loss": next((v for v in reversed(loss) if v is not None), None),
        "last_score": next((v for v in reversed(score) if v is not None), None),
    }


def box_style(box: list[float], width: int, height: int) -> str:
    """CSS placing ``[x1, y1, x2, y2]`` (pixels of a ``width`` x ``height`` image) over its picture."""
    x1, y1, x2, y2 = box
    width, height = width or 1, height or 1
    return (
        f"left:{100 * x1 / width:.2f}%;top:{100 * y1 / height:.2f}%;"
        f"width:{100 * (x2 - x1) / width:.2f}%;height:{100 * (y2 - y1) / height:.2f}%"
    )
