"""Object detection as a kind of prediction: ml's detector and Ximilar's ``_objects`` answer.

Each record gets ``_objects`` = ``[{"name", "id", "bound_box": [x1, y1, x2, y2], "prob"}]``, most
probable first, only those with ``prob >= keep_prob`` (the ``threshold`` of the shared service),
boxes in pixels of the image as received (upright).
"""

from __future__ import annotations

from apps.core.kinds import Predictor
from ml.loading import load_detection

from .models import DetectionLabel

PROB_DIGITS = 5
DEFAULT_KEEP_PROB = 0.3  # Ximilar's documented default


def load(directory, *, mode: str, num_threads: int | None = None, passes: int = 1):
    """The detector saved in ``directory``: its model.onnx in ONNX Runtime when it has one and
    ``mode`` is ``auto`` or ``onnx`` (no torch in the process), else the torch model."""
    return load_detection(directory, mode=mode, num_threads=num_threads, passes=passes)


def label_names(*, labels: list[dict]) -> dict[str, str]:
    """Current answer names (``output_name`` or ``name``) of the version's detection labels."""
    ids = [label["id"] for label in labels]
    return {str(label.pk): label.answer_name for label in DetectionLabel.objects.filter(pk__in=ids)}


def keep_prob(threshold: float | None) -> float:
    return DEFAULT_KEEP_PROB if threshold is None else threshold


def batch_options(threshold: float | None) -> dict:
    """The detector leaves out the objects under ``keep_prob`` itself: the same answer, and its NMS
    never works on boxes nobody is shown (ml/detection/postprocess.py)."""
    return {"min_prob": keep_prob(threshold)}


def answer(prediction: dict, predictor, names: dict[str, str], threshold: float | None) -> dict:
    keep = keep_prob(threshold)
    objects = []
    for found in prediction["objects"]:
        if found["prob"] < keep:
            continue
        label = predictor.labels[found["label"]]
        objects.append(
            {
                "name": names.get(label["id"], label["name"]),
                "id": label["id"],
                "bound_box": [int(v) for v in found["bound_box"]],
                "prob": round(float(found["prob"]), PROB_DIGITS),
            }
        )
    return {"_objects": objects}


PREDICTOR = Predictor(load=load, answer=answer, names=label_names, batch_options=batch_options)
