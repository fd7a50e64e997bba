"""Boxes on a detection task's training image: the editor page and its create / update / delete
calls, through the detection services (their validation, their tenancy)."""

from __future__ import annotations

import json

import pytest

from apps.detection.models import DetectionLabel, DetectionObject
from apps.tasks.models import Task
from apps.workspaces.services import workspace_ensure_default
from tests.factories import TaskFactory, TrainingImageFactory


@pytest.fixture
def detector(workspace):
    task = Task.objects.create(workspace=workspace, name="cars", type="detection", owner=workspace.owner)
    car = DetectionLabel.objects.create(workspace=workspace, name="car")
    sign = DetectionLabel.objects.create(workspace=workspace, name="sign")
    car.tasks.add(task)
    sign.tasks.add(task)
    return task, car, sign


def _box(label, x1, y1, x2, y2):
    return {"label": str(label.id), "x1": x1, "y1": y1, "x2": x2, "y2": y2}


def test_the_editor_shows_the_image_its_boxes_the_labels_and_the_next_image(console, workspace, detector):
    task, car, sign = detector
    older = TrainingImageFactory(workspace=workspace)
    image = TrainingImageFactory(workspace=workspace)
    DetectionObject.objects.create(workspace=workspace, detection_label=car, image=image, data=[1, 2, 10, 12])
    html = console.get(f"/console/tasks/{task.id}/images/{image.id}/boxes/").content.decode()
    boxes = json.loads(html.split('id="box-data" type="application/json">')[1].split("</script>")[0])
    assert boxes == [{"id": boxes[0]["id"], "label": str(car.id), "box": [1, 2, 10, 12]}]
    assert "car" in html and "sign" in html and f"/images/{older.id}/boxes/" in html
    grid = console.get(f"/console/tasks/{task.id}/images/").content.decode()
    assert "1 box" in grid and f"/images/{image.id}/boxes/" in grid


def test_a_box_is_created_moved_relabelled_and_deleted(console, workspace, detector):
    task, car, sign = detector
    image = TrainingImageFactory(workspace=workspace, data=None)
    base = f"/console/tasks/{task.id}/images/{image.id}/boxes/"
    created = console.post(base + "new/", _box(car, 2, 3, 20, 25))
    assert created.status_code == 200
    obj = DetectionObject.objects.get(pk=created.json()["id"])
    assert (obj.detection_label, obj.data) == (car, [2.0, 3.0, 20.0, 25.0])
    moved = console.post(base + f"{obj.id}/", _box(sign, 5, 5, 30, 28))
    assert moved.json()["box"] == [5.0, 5.0, 30.0, 28.0]
    obj.refresh_from_db()
    assert (obj.detection_label, obj.data) == (sign, [5.0, 5.0, 30.0, 28.0])
    assert console.post(base + f"{obj.id}/delete/").status_code == 200
    assert not DetectionObject.objects.exists()


def test_a_box_outside_the_image_is_refused_with_the_services_reason(console, workspace, detector):
    task, car, _ = detector
    image = TrainingImageFactory(workspace=workspace)
    base = f"/console/tasks/{task.id}/images/{image.id}/boxes/"
    outside = console.post(base + "new/", _box(car, 0, 0, image.img_width + 50, 10))
    assert outside.status_code == 400
    assert "is not inside the image" in outside.json()["error"]
    backwards = console.post(base + "new/", _box(car, 20, 0, 10, 10))
    assert "xmin < xmax" in backwards.json()["error"]
    assert console.post(base + "new/", {"label": str(car.id)}).status_code == 400
    assert not DetectionObject.objects.exists()


def test_boxes_belong_to_detection_tasks_and_to_the_workspace(console, workspace, detector, other_user):
    task, car, _ = detector
    image = TrainingImageFactory(workspace=workspace)
    recognition = TaskFactory(workspace=workspace)
    assert console.get(f"/console/tasks/{recognition.id}/images/{image.id}/boxes/").status_code == 404

    theirs = workspace_ensure_default(user=other_user)
    their_image = TrainingImageFactory(workspace=theirs)
    their_label = DetectionLabel.objects.create(workspace=theirs, name="their car")
    their_box = DetectionObject.objects.create(
        workspace=theirs, detection_label=their_label, image=their_image, data=[1, 1, 5, 5]
    )
    assert console.get(f"/console/tasks/{task.id}/images/{their_image.id}/boxes/").status_code == 404
    base = f"/console/tasks/{task.id}/images/{their_image.id}/boxes/"
    assert console.post(base + "new/", _box(car, 1, 1, 4, 4)).status_code == 404
    assert console.post(base + f"{their_box.id}/", _box(car, 1, 1, 4, 4)).status_code == 404
    assert console.post(base + f"{their_box.id}/delete/").status_code == 404
    mine = f"/console/tasks/{task.id}/images/{image.id}/boxes/"
    assert console.post(mine + "new/", _box(their_label, 1, 1, 4, 4)).status_code == 404
    assert console.post(mine + f"{their_box.id}/delete/").status_code == 404
    their_box.refresh_from_db()
    assert their_box.data == [1, 1, 5, 5] and DetectionObject.objects.count() == 1
