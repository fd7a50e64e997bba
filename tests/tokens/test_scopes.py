"""What each scope does through the API, and the binding to the token's workspace."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.detection.models import DetectionLabel, DetectionObject
from apps.images.services import training_image_ingest
from apps.tasks.models import Task
from apps.tokens import services
from apps.tokens.models import ScopedToken
from apps.tokens.scopes import MSG_REFUSED
from apps.workspaces.services import workspace_create
from tests.pictures import picture

TASKS = "/recognition/v2/task/"


def scoped(workspace, user, scope: str) -> APIClient:
    _token, key = services.scoped_token_create(workspace=workspace, actor=user, name=scope, scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def team(user, workspace):
    """A second workspace of the same owner: the token's, while the default holds other tasks."""
    team = workspace_create(owner=user, name="Team")
    Task.objects.create(workspace=workspace, owner=user, name="default's task")
    Task.objects.create(workspace=team, owner=user, name="team's task")
    return team


@pytest.mark.django_db
def test_without_a_workspace_a_token_acts_in_its_own_not_the_owners_default(user, team):
    response = scoped(team, user, "read-only").get(TASKS)
    assert response.status_code == 200
    assert [task["name"] for task in response.json()["results"]] == ["team's task"]


@pytest.mark.django_db
def test_naming_another_workspace_of_the_same_owner_is_a_404(user, workspace, team):
    client = scoped(team, user, "full")
    assert client.get(TASKS, {"workspace": str(workspace.id)}).status_code == 404
    response = client.post(TASKS, {"name": "x", "workspace": str(workspace.id)}, format="json")
    assert response.status_code == 404
    assert not Task.objects.filter(name="x").exists()


@pytest.mark.django_db
def test_the_default_alias_names_the_tokens_workspace(user, team):
    response = scoped(team, user, "read-only").get(TASKS, {"workspace": "Default"})
    assert [task["name"] for task in response.json()["results"]] == ["team's task"]


@pytest.mark.django_db
def test_a_detection_object_of_the_owners_other_workspace_is_a_404(user, workspace, team):
    # Object calls look in all the caller's workspaces when none is named; a token only in its own.
    label = DetectionLabel.objects.create(workspace=workspace, name="car")
    image = training_image_ingest(workspace=workspace, data=picture())
    box = DetectionObject.objects.create(
        workspace=workspace, detection_label=label, image=image, data=[1, 1, 9, 9]
    )
    assert scoped(team, user, "full").get(f"/detection/v2/object/{box.id}/").status_code == 404
    assert scoped(workspace, user, "read-only").get(f"/detection/v2/object/{box.id}/").status_code == 200


@pytest.mark.django_db
def test_read_only_reads_and_changes_nothing(user, team):
    client = scoped(team, user, "read-only")
    assert client.get(TASKS).status_code == 200
    response = client.post(TASKS, {"name": "new"}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": MSG_REFUSED["read-only"]}
    task = Task.objects.get(name="team's task")
    assert client.delete(f"{TASKS}{task.id}/").status_code == 403
    assert (
        client.post(
            "/recognition/v2/classify/", {"task_id": str(task.id), "records": []}, format="json"
        ).status_code
        == 403
    )
    assert Task.objects.filter(workspace=team).count() == 1


@pytest.mark.django_db
def test_classify_only_calls_classify_and_nothing_else(user, team):
    client = scoped(team, user, "classify-only")
    task = Task.objects.get(name="team's task")
    response = client.get(TASKS)
    assert response.status_code == 403
    assert response.json() == {"detail": MSG_REFUSED["classify-only"]}
    # Past the scope: the classify service's own answer (this task has nothing trained).
    response = client.post(
        "/recognition/v2/classify/",
        {"task_id": str(task.id), "records": [{"_url": "https://example.com/a.jpg"}]},
        format="json",
    )
    assert response.status_code not in (401, 403, 404), response.content
    assert client.post(TASKS, {"name": "new"}, format="json").status_code == 403


@pytest.mark.django_db
def test_full_changes_the_workspace_but_not_the_account(user, team):
    client = scoped(team, user, "full")
    response = client.post(TASKS, {"name": "new"}, format="json")
    assert response.status_code == 201, response.content
    assert Task.objects.get(name="new").workspace_id == team.id
    response = client.post("/account/v2/workspace/", {"name": "more"}, format="json")
    assert response.status_code == 403
    assert client.get("/account/v2/user/").status_code == 403
    assert client.get(f"/account/v2/workspace/{team.id}/audit-log/").status_code == 403


@pytest.mark.django_db
def test_a_refused_call_is_refused_before_its_body_is_read(user, team):
    # Not JSON at all: a 400 if the body were parsed; the scope refuses it first (an upload a
    # read-only token sends is never spooled).
    client = scoped(team, user, "read-only")
    response = client.generic("POST", TASKS, "{not json", content_type="application/json")
    assert response.status_code == 403
    assert response.json() == {"detail": MSG_REFUSED["read-only"]}


@pytest.mark.django_db
def test_what_a_full_token_deletes_is_logged_as_the_owner_through_that_token(user, team):
    from apps.audit.models import AuditEvent

    client = scoped(team, user, "full")
    task = Task.objects.get(name="team's task")
    assert client.delete(f"{TASKS}{task.id}/").status_code == 204
    event = AuditEvent.objects.get(action="task.deleted")
    assert (event.actor, event.workspace_id, event.target_name) == (user, team.id, "team's task")
    token = ScopedToken.objects.get(workspace=team)
    assert event.details["token"] == "full" and event.details["token_prefix"] == token.prefix
