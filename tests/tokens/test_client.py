"""The official Ximilar client (ximilar-client 1.39.0) with a scoped token, over HTTP against a
live server: it sends ``Authorization: Token <key>`` as for a user's token, and "Default" (its
workspace unless told) is the token's workspace."""

from __future__ import annotations

import pytest
from ximilar.client import RecognitionClient

from apps.tasks.models import Task
from apps.tokens import services
from apps.workspaces.services import workspace_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def team(user, workspace):
    team = workspace_create(owner=user, name="Team")
    Task.objects.create(workspace=workspace, owner=user, name="default's task")
    Task.objects.create(workspace=team, owner=user, name="team's task")
    return team


def _client(live_server, team, user, scope: str, **kwargs) -> RecognitionClient:
    _token, key = services.scoped_token_create(workspace=team, actor=user, name=scope, scope=scope)
    return RecognitionClient(token=key, endpoint=live_server.url + "/", **kwargs)


def test_a_read_only_token_lists_its_workspaces_tasks_and_creates_none(live_server, user, team):
    client = _client(live_server, team, user, "read-only")
    tasks, status = client.get_all_tasks()
    assert status["status"] == "OK"
    assert [task.name for task in tasks] == ["team's task"]
    task, status = client.create_task("new")
    assert task is None
    assert "read-only" in str(status), status
    assert Task.objects.filter(workspace=team).count() == 1


def test_a_full_token_creates_tasks_in_its_workspace_named_or_not(live_server, user, team):
    for kwargs in ({}, {"workspace": str(team.pk)}):
        task, status = _client(live_server, team, user, "full", **kwargs).create_task(f"new {len(kwargs)}")
        assert status["status"] == "OK", status
        assert Task.objects.get(pk=task.id).workspace == team
