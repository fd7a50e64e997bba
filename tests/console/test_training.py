"""Training in the console: the live progress partial, a version's metrics page, a real training
through the train button, "try it" with the deployed or a chosen version, and the download."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.template.loader import render_to_string

from apps.console import charts
from apps.images.models import TrainingImage
from apps.tasks.models import Task
from apps.training.models import ModelVersion
from apps.workspaces.services import workspace_ensure_default
from tests.factories import TaskFactory, TrainingImageFactory, add_trained_version, make_task
from tests.pictures import COLOURS, picture, solid


def test_the_progress_partial_shows_percent_epoch_and_loss_and_keeps_polling(console, workspace):
    task = TaskFactory(workspace=workspace)
    ModelVersion.objects.create(
        workspace=workspace,
        task=task,
        version=1,
        train_status="IN_TRAINING",
        progress=42.4,
        epoch=3,
        loss=0.5123,
    )
    response = console.get(f"/console/tasks/{task.id}/versions/1/progress/", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "IN_TRAINING" in html and "42%" in html and "epoch 3" in html and "loss 0.5123" in html
    assert 'hx-trigger="every 1s"' in html
    assert "HX-Refresh" not in response
    page = console.get(f"/console/tasks/{task.id}/versions/1/").content.decode()
    assert 'hx-get="/console/tasks/' in page and "Confusion matrix" not in page


def test_the_progress_partial_says_what_a_probe_is_doing(console, workspace):
    task = TaskFactory(workspace=workspace)
    ModelVersion.objects.create(
        workspace=workspace,
        task=task,
        version=1,
        train_status="IN_TRAINING",
        progress=12,
        epoch=None,
        stage="lite2_probe: features of tf_efficientnet_lite2 (1 of 2)",
    )
    html = console.get(f"/console/tasks/{task.id}/versions/1/progress/", HTTP_HX_REQUEST="true").content
    assert "12% · lite2_probe: features of tf_efficientnet_lite2 (1 of 2)" in html.decode()
    assert "epoch" not in html.decode()


def test_a_trained_probes_progress_says_done_and_what_was_chosen_never_epoch_0(console, workspace, tmp_path):
    task = TaskFactory(workspace=workspace)
    version = add_trained_version(task, 1, tmp_path)
    version.epoch, version.progress = 0, 100.0  # as model_version_finish writes a probe's
    version.metrics = {**version.metrics, "selected": "lite2_probe"}
    version.save()
    html = console.get(f"/console/tasks/{task.id}/versions/1/progress/").content.decode()
    assert "100%" in html and "done" in html and "lite2_probe chosen" in html
    assert "epoch" not in html


def test_a_queued_version_says_it_waits_for_a_worker(console, workspace):
    task = TaskFactory(workspace=workspace)
    ModelVersion.objects.create(workspace=workspace, task=task, version=1, train_status="QUEUED")
    html = console.get(f"/console/tasks/{task.id}/versions/1/progress/").content.decode()
    assert "waiting for a worker" in html


def test_the_progress_partial_stops_polling_and_reloads_the_page_when_done(console, workspace):
    task = TaskFactory(workspace=workspace)
    ModelVersion.objects.create(workspace=workspace, task=task, version=1, train_status="FAILED", progress=10)
    response = console.get(f"/console/tasks/{task.id}/versions/1/progress/", HTTP_HX_REQUEST="true")
    assert response["HX-Refresh"] == "true"
    assert "every 1s" not in response.content.decode()


def test_a_trained_versions_page_shows_candidates_metrics_heat_map_curves_and_wrong_images_first(
    console, workspace, tmp_path
):
    task = TaskFactory(workspace=workspace)
    right, wrong = (TrainingImageFactory(workspace=workspace) for _ in range(2))
    version = add_trained_version(task, 1, tmp_path)
    labels = [{"id": "a", "name": "cat"}, {"id": "b", "name": "dog"}]
    version.metrics = {
        "accuracy": 0.75,
        "precision": 0.8,
        "recall": 0.7,
        "f1": 0.74,
        "per_label": [
            {"name": "cat", "precision": 0.9, "recall": 0.6, "f1": 0.72, "support": 5},
            {"name": "dog", "precision": 0.7, "recall": 0.8, "f1": 0.75, "support": 3},
        ],
        "confusion_matrix": {"labels": ["cat", "dog"], "matrix": [[3, 2], [0, 3]]},
        "candidates": [
            {"name": "probe-lite0", "kind": "probe", "architecture": "lite0", "validation_score": 0.9},
            {"name": "scratch", "kind": "net", "architecture": "resnet10t", "validation_score": 0.6},
        ],
        "selected": "probe-lite0",
        "history": [{"epoch": 1, "loss": 1.0, "val_score": 0.5}, {"epoch": 2, "loss": 0.5, "val_score": 0.8}],
    }
    version.evaluation = [
        {
            "image_id": str(wrong.id),
            "true_labels": [labels[0]],
            "predicted_labels": [{**labels[1], "prob": 0.6}],
            "correct": False,
        },
        {
            "image_id": str(right.id),
            "true_labels": [labels[1]],
            "predicted_labels": [{**labels[1], "prob": 0.9}],
            "correct": True,
        },
    ]
    version.save()
    html = console.get(f"/console/tasks/{task.id}/versions/1/").content.decode()
    assert "probe-lite0 <strong>selected</strong>" in html and "scratch" in html
    assert "72.0%" in html and "75.0%" in html  # per-label F1, written for people
    assert "Accuracy <strong>75.0%</strong>" in html and "0.75<" not in html
    assert "<td>90.0%</td>" in html  # the selected candidate's validation score
    assert 'class="heatmap"' in html and 'style="--alpha:0.6"' in html and 'style="--alpha:0.4"' in html
    assert "<polyline" in html and 'class="loss"' in html and 'class="score"' in html
    assert html.index(str(wrong.thumbnail).split("/")[-1]) < html.index(str(right.thumbnail).split("/")[-1])
    assert 'class="wrong"' in html


@pytest.mark.slow
def test_the_train_button_trains_and_the_model_is_tried_deployed_and_downloaded(
    console, user, workspace, fast_training, django_capture_on_commit_callbacks
):
    task, labels = make_task(workspace, user, per_label=8)
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(f"/console/tasks/{task.id}/train/")
    assert response["Location"] == f"/console/tasks/{task.id}/versions/1/"
    version = ModelVersion.objects.get(task=task, version=1)
    assert version.train_status == "TRAINED", version.metrics
    html = console.get(response["Location"]).content.decode()
    assert "Confusion matrix" in html and "Test images, wrong ones first" in html

    rng = np.random.default_rng(7)
    data = solid(COLOURS[1], rng)
    tried = console.post(
        f"/console/tasks/{task.id}/try/",
        {"image": SimpleUploadedFile("x.png", data, content_type="image/png")},
    )
    assert tried.status_code == 200
    answer = tried.content.decode()
    assert "Version 1 says" in answer and "Best label" in answer and labels[1].name in answer
    assert 'src="data:image/png;base64,' in answer
    assert not TrainingImage.objects.filter(workspace=workspace).count() > 16  # nothing stored

    pinned = console.post(
        f"/console/tasks/{task.id}/try/",
        {"image": SimpleUploadedFile("x.png", data, content_type="image/png"), "version": 5},
    )
    assert pinned.status_code == 400
    assert "Model version 5 of this task is not trained." in pinned.content.decode()

    junk = console.post(
        f"/console/tasks/{task.id}/try/",
        {"image": SimpleUploadedFile("a.txt", b"hello", content_type="text/plain")},
    )
    assert junk.status_code == 400
    assert "not an image" in junk.content.decode()

    download = console.get(f"/console/tasks/{task.id}/versions/1/download/")
    assert download["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).namelist()
    assert "model.json" in names


def test_a_version_that_is_not_trained_cannot_be_downloaded(console, workspace):
    task = TaskFactory(workspace=workspace)
    ModelVersion.objects.create(workspace=workspace, task=task, version=1, train_status="FAILED")
    response = console.get(f"/console/tasks/{task.id}/versions/1/download/")
    assert response.status_code == 400
    assert b"Only a TRAINED model version can be downloaded." in response.content


def test_another_workspaces_versions_are_404s(console, other_user, tmp_path):
    task = TaskFactory(workspace=workspace_ensure_default(user=other_user))
    add_trained_version(task, 1, tmp_path)
    for suffix in ("", "progress/", "download/"):
        assert console.get(f"/console/tasks/{task.id}/versions/1/{suffix}").status_code == 404
    assert (
        console.get(f"/console/tasks/{TaskFactory(workspace=task.workspace).id}/versions/9/").status_code
        == 404
    )


def test_a_detection_versions_page_shows_ap_per_label_and_the_boxes_on_the_test_images(
    console, workspace, tmp_path
):
    task = Task.objects.create(workspace=workspace, name="cars", type="detection", owner=workspace.owner)
    image = TrainingImageFactory(workspace=workspace, data=picture(size=(200, 100), color=(3, 4, 5)))
    version = add_trained_version(task, 1, tmp_path)
    version.metrics = {
        "map50": 0.81,
        "precision": 0.9,
        "recall": 0.7,
        "test_images": 1,
        "per_label": [
            {"name": "car", "ap": 0.81, "precision": 0.9, "recall": 0.7, "true": 3, "predicted": 2}
        ],
        "history": [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5}],
    }
    car = {"id": "x", "name": "car"}
    version.evaluation = [
        {
            "image_id": str(image.id),
            "true_objects": [{**car, "bound_box": [0, 0, 100, 50]}],
            "predicted_objects": [{**car, "bound_box": [100, 50, 200, 100], "prob": 0.9, "correct": False}],
            "false_positives": 1,
            "false_negatives": 1,
            "correct": False,
        }
    ]
    version.save()
    html = console.get(f"/console/tasks/{task.id}/versions/1/").content.decode()
    assert "mAP@0.5 <strong>81.0%</strong>" in html and "<th>AP</th>" in html
    assert 'class="box true" style="left:0.00%;top:0.00%;width:50.00%;height:50.00%"' in html
    assert 'class="box predicted" style="left:50.00%;top:50.00%;width:50.00%;height:50.00%"' in html
    assert "1 false +, 1 missed" in html


def test_the_try_answer_of_a_detector_draws_its_boxes_over_the_image():
    found = {"name": "car", "prob": 0.876, "bound_box": [10, 20, 60, 70]}
    found["style"] = charts.box_style(found["bound_box"], 200, 100)
    html = render_to_string(
        "console/_try_result.html",
        {
            "record": {},
            "objects": [found],
            "version": 3,
            "image_src": "data:image/png;base64,AA==",
            "is_detection": True,
        },
    )
    assert "Version 3 says" in html and "1 object found." in html and "car: 87.6%" in html
    assert 'style="left:5.00%;top:20.00%;width:25.00%;height:50.00%"' in html
