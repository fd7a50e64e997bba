"""Deleting removes the files: images, thumbnails and model artifacts leave storage with their rows,
on every delete path (API or admin, workspace, user, task), on local storage and on S3."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from apps.images.models import TrainingImage
from apps.training.models import ModelVersion
from apps.workspaces import services as workspace_services
from tests.factories import UserFactory, add_trained_version, make_task

pytestmark = pytest.mark.django_db


def _local_files() -> set[str]:
    root = Path(django_settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _fill(owner, tmp_path, name="doomed"):
    """A workspace with a task, 2 x 3 images (files and thumbnails) and a TRAINED version's files."""
    workspace = workspace_services.workspace_create(owner=owner, name=name)
    task, _ = make_task(workspace, owner, per_label=3)
    add_trained_version(task, 1, tmp_path)
    return workspace, task


def _admin() -> Client:
    browser = Client()
    browser.force_login(UserFactory(is_staff=True, is_superuser=True))
    return browser


def test_deleting_a_workspace_through_the_api_removes_its_files(
    api, user, tmp_path, django_capture_on_commit_callbacks
):
    before = _local_files()
    workspace, _ = _fill(user, tmp_path)
    added = _local_files() - before
    assert len([f for f in added if f.startswith("models/")]) >= 2 and len(added) >= 12 + 2
    image = api.get(f"/recognition/v2/training-image/?workspace={workspace.id}").json()["results"][0]
    assert api.get(image["img_path"]).status_code == 200  # signed link, no token needed

    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/account/v2/workspace/{workspace.id}/").status_code == 204
    assert _local_files() == before
    assert api.get(image["img_path"]).status_code == 404


@pytest.mark.parametrize("path", ["workspace", "user", "task"])
def test_deleting_through_the_admin_removes_the_files(path, tmp_path, django_capture_on_commit_callbacks):
    before = _local_files()
    owner = UserFactory()
    workspace, task = _fill(owner, tmp_path)
    url, keeps_images = {
        "workspace": (f"/admin/workspaces/workspace/{workspace.pk}/delete/", False),
        "user": (f"/admin/auth/user/{owner.pk}/delete/", False),
        "task": (f"/admin/tasks/task/{task.pk}/delete/", True),  # images belong to the workspace
    }[path]
    with django_capture_on_commit_callbacks(execute=True):
        response = _admin().post(url, {"post": "yes"})
    assert response.status_code == 302, response.content[:500]
    assert not ModelVersion.objects.filter(task_id=task.pk).exists()
    left = _local_files() - before
    assert not [f for f in left if f.startswith("models/")], left
    if keeps_images:
        assert len(left) == 2 * TrainingImage.objects.filter(workspace=workspace).count()
    else:
        assert left == set()


def test_deleting_a_workspace_on_s3_empties_the_bucket(
    api, user, tmp_path, s3_storage, django_capture_on_commit_callbacks
):
    workspace, _ = _fill(user, tmp_path)
    assert len(list(s3_storage.objects.all())) >= 12 + 2  # images, thumbnails, artifacts
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/account/v2/workspace/{workspace.id}/").status_code == 204
    assert [o.key for o in s3_storage.objects.all()] == []


def test_a_rolled_back_delete_keeps_the_files(user, tmp_path):
    from django.db import transaction

    workspace, _ = _fill(user, tmp_path)
    files = _local_files()
    with pytest.raises(RuntimeError), transaction.atomic():
        workspace.delete()
        raise RuntimeError("rolled back")
    assert _local_files() == files


def test_the_admin_refuses_to_delete_a_task_whose_version_trains(user, workspace):
    task, _ = make_task(workspace, user, per_label=3)
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status="IN_TRAINING"
    )
    response = _admin().post(f"/admin/tasks/task/{task.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert ModelVersion.objects.filter(pk=version.pk).exists()
