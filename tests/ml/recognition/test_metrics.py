"""Metric shapes and the per-label threshold choice, on hand-made outputs (no training)."""

from __future__ import annotations

import numpy as np

from ml.recognition import metrics

LABELS = [{"id": "a", "name": "cat"}, {"id": "b", "name": "dog"}]


def test_a_threshold_is_chosen_between_the_classes_to_maximise_f1():
    probs = np.array([[0.9, 0.2], [0.7, 0.1], [0.3, 0.3], [0.2, 0.05]])
    truth = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    thresholds = metrics.best_thresholds(probs, truth)
    assert 0.3 < thresholds[0] <= 0.7
    assert thresholds[1] == 0.5  # no positive for "dog": nothing to tune on


def test_multi_class_metrics_have_per_label_rows_and_a_confusion_matrix():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    result = metrics.classification_metrics(probs, [0, 1, 1, 1], LABELS)
    assert result["accuracy"] == 0.75
    assert result["confusion_matrix"] == {"labels": ["cat", "dog"], "matrix": [[1, 0], [1, 2]]}
    dog = result["per_label"][1]
    assert dog["label_id"] == "b" and dog["support"] == 3 and dog["precision"] == 1.0
    assert dog["threshold"] is None


def test_regression_metrics_are_in_target_units_and_accuracy_is_none():
    result = metrics.regression_metrics(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 4.0]))
    assert result["accuracy"] is None
    assert abs(result["mae"] - 1 / 3) < 1e-9
    assert abs(result["rmse"] - (1 / 3) ** 0.5) < 1e-9
    assert result["r2"] is not None and result["r2"] < 1
