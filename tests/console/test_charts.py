"""The metrics as the console draws them: heat-map shades, curve points, boxes over a picture."""

from __future__ import annotations

from apps.console import charts


def test_the_heat_map_shades_each_cell_by_its_share_of_the_true_labels_row():
    heat = charts.heatmap({"labels": ["cat", "dog"], "matrix": [[3, 1], [0, 0]]})
    cat, dog = heat["rows"]
    assert [(c["count"], c["alpha"], c["diagonal"]) for c in cat["cells"]] == [
        (3, 0.75, True),
        (1, 0.25, False),
    ]
    assert [c["alpha"] for c in dog["cells"]] == [0, 0]  # an empty row shades nothing, divides by nothing
    assert charts.heatmap(None) is None
    assert charts.heatmap({"labels": ["a"], "matrices": [[[1, 0], [0, 1]]]}) is None  # multi_label


def test_multi_label_matrices_become_one_row_of_counts_per_tag():
    rows = charts.label_matrices({"labels": ["red"], "matrices": [[[5, 1], [2, 7]]]})
    assert rows == [{"label": "red", "tn": 5, "fp": 1, "fn": 2, "tp": 7}]


def test_curves_scale_each_series_into_the_chart_and_skip_missing_scores():
    curves = charts.curves(
        [
            {"epoch": 1, "loss": 2.0},
            {"epoch": 2, "loss": 1.0, "val_score": 0.5},
            {"epoch": 3, "loss": 0.0, "val_score": 1.0},
        ]
    )
    pad, bottom, right = (
        charts.CHART_PAD,
        charts.CHART_HEIGHT - charts.CHART_PAD,
        charts.CHART_WIDTH - charts.CHART_PAD,
    )
    assert (
        curves["loss"]
        == f"{pad:.1f},{pad:.1f} {(pad + right) / 2:.1f},{(pad + bottom) / 2:.1f} {right:.1f},{bottom:.1f}"
    )
    assert len(curves["score"].split()) == 2  # epoch 1 had no validation score
    assert (curves["last_loss"], curves["last_score"], curves["epochs"]) == (0.0, 1.0, 3)
    assert charts.curves([]) is None


def test_a_box_is_placed_in_percent_of_its_image():
    assert charts.box_style([10, 20, 60, 70], 200, 100) == "left:5.00%;top:20.00%;width:25.00%;height:50.00%"
