"""Tasks in the console: list, create, labels, delete with confirmation, deploy, train refusals;
another workspace's task is a 404 and stays as it was."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.detection.models import DetectionLabel
from apps.labels.models import Label
from apps.tasks.models import Task
from apps.training.models import ModelVersion
from tests.factories import TaskFactory, add_trained_version


@pytest.mark.parametrize(
    ("task_type", "label_type"),
    [("multi_class", "category"), ("multi_label", "tag"), ("regression", "value"), ("detection", None)],
)
def test_it_creates_a_task_of_each_type_and_labels_of_the_matching_kind(
    console, workspace, task_type, label_type
):
    response = console.post("/console/tasks/", {"name": "Pets", "type": task_type})
    task = Task.objects.get(workspace=workspace, name="Pets")
    assert task.type == task_type
    assert response["Location"] == f"/console/tasks/{task.id}/"
    assert console.post(f"/console/tasks/{task.id}/labels/", {"name": "cat"}).status_code == 302
    if task_type == "detection":
        assert list(task.detection_labels.values_list("name", flat=True)) == ["cat"]
        assert task.train_time_budget  # the detection service's default, not the recognition one
    else:
        assert task.labels.get(name="cat").type == label_type
    page = console.get(f"/console/tasks/{task.id}/")
    assert b"cat" in page.content and b"Train" in page.content
    assert b"Pets" in console.get("/console/tasks/").content


def test_a_task_without_a_name_is_refused_with_the_reason_and_nothing_is_created(console, workspace):
    response = console.post("/console/tasks/", {"name": "  ", "type": "multi_class"})
    assert response.status_code == 400
    assert b"This field is required." in response.content
    response = console.post("/console/tasks/", {"name": "x", "type": "chess"})
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert not Task.objects.filter(workspace=workspace).exists()


def test_a_label_without_a_name_is_refused_and_nothing_is_created(console, workspace):
    task = TaskFactory(workspace=workspace)
    response = console.post(f"/console/tasks/{task.id}/labels/", {"name": ""})
    assert response.status_code == 400
    assert b"This field is required." in response.content
    assert not Label.objects.filter(workspace=workspace).exists()


def test_the_task_page_shows_labels_with_image_counts_and_the_versions(console, workspace, tmp_path):
    from tests.factories import TrainingImageFactory

    task = TaskFactory(workspace=workspace)
    cat = Label.objects.create(workspace=workspace, name="cat")
    task.labels.add(cat)
    for _ in range(3):
        TrainingImageFactory(workspace=workspace, label_ids=[cat.id])
    add_trained_version(task, 1, tmp_path)
    ModelVersion.objects.create(workspace=workspace, task=task, version=2, train_status="FAILED")
    page = console.get(f"/console/tasks/{task.id}/").content.decode()
    assert "3 images" in page
    assert "v1" in page and "TRAINED" in page and "FAILED" in page
    assert f"/console/tasks/{task.id}/versions/1/download/" in page


def test_the_label_counts_answer_what_the_cards_say_for_the_upload_script(console, workspace, other_console):
    from tests.factories import TrainingImageFactory

    task = TaskFactory(workspace=workspace)
    cat, dog = (Label.objects.create(workspace=workspace, name=name) for name in ("cat", "dog"))
    task.labels.add(cat, dog)
    for _ in range(3):
        TrainingImageFactory(workspace=workspace, label_ids=[cat.id])
    TrainingImageFactory(workspace=workspace, label_ids=[dog.id])
    response = console.get(f"/console/tasks/{task.id}/labels/counts/")
    assert response.status_code == 200
    assert response.json() == {"labels": {str(cat.id): "3 images", str(dog.id): "1 image"}}
    page = console.get(f"/console/tasks/{task.id}/").content.decode()
    assert f'data-counts-url="/console/tasks/{task.id}/labels/counts/"' in page
    assert f'data-label-id="{cat.id}" aria-live="polite">3 images<' in page
    assert other_console.get(f"/console/tasks/{task.id}/labels/counts/").status_code == 404


def test_delete_asks_first_then_deletes_on_post(console, workspace):
    task = TaskFactory(workspace=workspace)
    confirm = console.get(f"/console/tasks/{task.id}/delete/")
    assert b"Yes, delete the task" in confirm.content
    assert Task.objects.filter(pk=task.pk).exists()
    assert console.post(f"/console/tasks/{task.id}/delete/")["Location"] == "/console/tasks/"
    assert not Task.objects.filter(pk=task.pk).exists()


def test_a_task_whose_version_trains_is_not_deleted_and_says_why(console, workspace):
    task = TaskFactory(workspace=workspace)
    ModelVersion.objects.create(workspace=workspace, task=task, version=1, train_status="IN_TRAINING")
    response = console.post(f"/console/tasks/{task.id}/delete/", follow=True)
    assert b"A version of this task is training" in response.content
    assert Task.objects.filter(pk=task.pk).exists()


def test_deploy_switches_the_production_version_and_refuses_an_untrained_one(console, workspace, tmp_path):
    task = TaskFactory(workspace=workspace)
    add_trained_version(task, 1, tmp_path)
    add_trained_version(task, 2, tmp_path)
    ModelVersion.objects.create(workspace=workspace, task=task, version=3, train_status="FAILED")
    console.post(f"/console/tasks/{task.id}/deploy/", {"version": 2})
    task.refresh_from_db()
    assert task.production_version == 2
    refused = console.post(f"/console/tasks/{task.id}/deploy/", {"version": 3}, follow=True)
    assert b"Model version 3 of this task is not trained." in refused.content
    task.refresh_from_db()
    assert task.production_version == 2


def test_train_refuses_a_task_without_enough_images_and_says_why(console, workspace):
    task = TaskFactory(workspace=workspace)
    response = console.post(f"/console/tasks/{task.id}/train/", follow=True)
    assert response.status_code == 200
    assert b'class="error"' in response.content
    assert not ModelVersion.objects.filter(task=task).exists()


def test_the_forms_need_their_csrf_token(user, workspace):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/console/tasks/", {"name": "Pets", "type": "multi_class"}).status_code == 403
    assert not Task.objects.filter(workspace=workspace).exists()
    page = client.get("/console/tasks/")
    assert b'name="csrfmiddlewaretoken"' in page.content
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/console/tasks/", {"name": "Pets", "type": "multi_class", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


def test_another_workspaces_task_is_a_404_and_stays_as_it_was(console, other_user, tmp_path):
    from apps.workspaces.services import workspace_ensure_default

    theirs = workspace_ensure_default(user=other_user)
    task = TaskFactory(workspace=theirs)
    add_trained_version(task, 1, tmp_path)
    detector = Task.objects.create(workspace=theirs, name="detector", type="detection")
    DetectionLabel.objects.create(workspace=theirs, name="car").tasks.add(detector)
    for url in (
        f"/console/tasks/{task.id}/",
        f"/console/tasks/{detector.id}/",
        f"/console/tasks/{task.id}/delete/",
    ):
        response = console.get(url)
        assert response.status_code == 404
        assert b"Not found" in response.content
    for path, body in (
        ("delete/", {}),
        ("labels/", {"name": "x"}),
        ("deploy/", {"version": 1}),
        ("train/", {}),
    ):
        assert console.post(f"/console/tasks/{task.id}/{path}", body).status_code == 404
    assert Task.objects.filter(pk=task.pk).exists()
    assert not Label.objects.filter(workspace=theirs).exists()
    assert ModelVersion.objects.filter(task=task).count() == 1


def test_the_final_refit_switch_sets_the_tasks_field_and_shows_its_state(console, workspace, other_console):
    task = TaskFactory(workspace=workspace)
    page = console.get(f"/console/tasks/{task.id}/").content.decode()
    assert (
        'id="final-refit"' in page
        and 'name="final_refit"' in page
        and "checked" not in page.split('id="final-refit"')[1].split("</form>")[0]
    )
    console.post(f"/console/tasks/{task.id}/final-refit/", {"final_refit": "on"})
    task.refresh_from_db()
    assert task.final_refit is True
    page = console.get(f"/console/tasks/{task.id}/").content.decode()
    assert "checked" in page.split('id="final-refit"')[1].split("</form>")[0]
    console.post(f"/console/tasks/{task.id}/final-refit/", {})  # the box unticked
    task.refresh_from_db()
    assert task.final_refit is False
    # Another workspace's user cannot flip it.
    assert (
        other_console.post(f"/console/tasks/{task.id}/final-refit/", {"final_refit": "on"}).status_code == 404
    )
    task.refresh_from_db()
    assert task.final_refit is False
