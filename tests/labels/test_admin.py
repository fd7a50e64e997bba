"""The admin pages for tasks, labels and model versions render (with counts, filters and search)."""

from __future__ import annotations

import pytest

from apps.training.models import ModelVersion
from apps.workspaces import services as workspace_services
from tests.factories import LabelFactory, TaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    admin_user, _ = workspace_services.user_create(username="admin", password="pw-123456", is_staff=True)
    client.force_login(admin_user)
    return client, workspace_services.workspace_ensure_default(user=admin_user)


def test_the_admin_lists_and_shows_tasks_labels_and_versions(staff_client):
    client, workspace = staff_client
    label = LabelFactory(workspace=workspace, name="zebra")
    task = TaskFactory(workspace=workspace, name="animals")
    task.labels.add(label)
    version = ModelVersion.objects.create(workspace=workspace, task=task, version=1, train_status="TRAINED")

    pages = [
        "/admin/tasks/task/",
        "/admin/tasks/task/?q=zebra&type__exact=multi_class",
        f"/admin/tasks/task/{task.pk}/change/",
        "/admin/labels/label/",
        "/admin/labels/label/?q=zeb&type__exact=category",
        f"/admin/labels/label/{label.pk}/change/",
        "/admin/training/modelversion/",
        f"/admin/training/modelversion/{version.pk}/change/",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
    assert b"zebra" in client.get("/admin/labels/label/").content
    assert b"animals" in client.get("/admin/tasks/task/?q=zebra").content
    assert client.get("/admin/training/modelversion/add/").status_code == 403
