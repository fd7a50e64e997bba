"""Image recognition (multi_class, multi_label, regression) as a kind of prediction.

``load`` hands ml/ the version's folder and the inference mode; ``answer`` shapes one record's
prediction as Ximilar does: ``best_label`` and ``labels`` by probability (multi_label also
``best_labels`` over their trained thresholds), or a ``value`` for regression; ``label_names`` are
the recognition labels' current names.
"""

from __future__ import annotations

from apps.core.kinds import Predictor
from apps.labels.models import Label
from ml.loading import load_recognition

PROB_DIGITS = 5  # Ximilar answers probabilities with 5 decimals


def load(directory, *, mode: str, num_threads: int | None = None, passes: int = 1):
    """The version saved in ``directory``, loaded by ml/ for inference in ``mode`` and warmed up:
    from its ``model.onnx`` alone where it can (no torch in the process), else with torch."""
    return load_recognition(directory, mode=mode, num_threads=num_threads, passes=passes)


def label_names(*, labels: list[dict]) -> dict[str, str]:
    """Current names of the version's labels (renamed since training: the new name wins)."""
    ids = [label["id"] for label in labels]
    return {str(pk): name for pk, name in Label.objects.filter(pk__in=ids).values_list("pk", "name")}


def _label(labels: list[dict], names: dict[str, str], index: int) -> dict:
    label = labels[index]
    return {"id": label["id"], "name": names.get(label["id"], label["name"])}


def _classification(prediction: dict, predictor, names: dict[str, str], threshold: float | None) -> dict:
    labels = predictor.labels
    probs = prediction["probs"]
    ranked = sorted(
        ({**_label(labels, names, i), "prob": round(float(p), PROB_DIGITS)} for i, p in enumerate(probs)),
        key=lambda item: -item["prob"],
    )
    answer: dict = {"best_label": ranked[0] if ranked else None}
    if predictor.task_type == "multi_label":
        cutoffs = predictor.thresholds or [0.5] * len(probs)
        answer["best_labels"] = [
            {**_label(labels, names, i), "prob": round(float(p), PROB_DIGITS)}
            for i, p in sorted(enumerate(probs), key=lambda ip: -ip[1])
            if p >= cutoffs[i]
        ]
    answer["labels"] = ranked if threshold is None else [item for item in ranked if item["prob"] >= threshold]
    return answer


def _regression(prediction: dict, predictor, names: dict[str, str]) -> dict:
    value = {**_label(predictor.labels, names, 0), "value": float(prediction["value"])}
    return {"best_label": value, "labels": [dict(value)]}


def answer(prediction: dict, predictor, names: dict[str, str], threshold: float | None) -> dict:
    if predictor.task_type == "regression":
        return _regression(prediction, predictor, names)
    return _classification(prediction, predictor, names, threshold)


PREDICTOR = Predictor(load=load, answer=answer, names=label_names)
