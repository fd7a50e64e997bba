"""The audit log: who did what to whom. Membership changes, tokens, deletions (not again for what
a larger delete takes with it) and sign-in lockouts are recorded with the actor; a workspace's
owner reads its log (paged), a member is refused, another user gets a 404; the admin reads all."""

from __future__ import annotations

import html

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.audit.selectors import MSG_ONLY_OWNER_READS
from apps.workspaces import services as workspace_services
from tests.factories import TaskFactory, UserFactory, add_trained_version

pytestmark = pytest.mark.django_db

ACCOUNT = "/account/v2"
API = "/recognition/v2"


def _log(api, workspace) -> list[dict]:
    response = api.get(f"{ACCOUNT}/workspace/{workspace.pk}/audit-log/")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_membership_changes_are_logged_with_who_made_them_and_the_owner_reads_them(api, user, other_user):
    team = workspace_services.workspace_create(owner=user, name="Team")
    assert (
        api.post(f"{ACCOUNT}/workspace/{team.pk}/members/", {"username": other_user.username}).status_code
        == 201
    )
    assert api.delete(f"{ACCOUNT}/workspace/{team.pk}/members/{other_user.pk}/").status_code == 204

    removed, added = _log(api, team)
    assert added["action"] == "membership.added" and removed["action"] == "membership.removed"
    assert set(added) == {
        "id",
        "created",
        "actor",
        "action",
        "target_type",
        "target_id",
        "target_name",
        "details",
    }
    assert added["actor"] == user.username
    assert (added["target_type"], added["target_id"], added["target_name"]) == (
        "user",
        str(other_user.pk),
        other_user.username,
    )
    assert AuditEvent.objects.get(action="membership.added").ip == "127.0.0.1"


def test_only_the_owner_reads_the_log_a_stranger_gets_404_and_no_token_401(
    api, other_api, anon, user, other_user, shared_workspace
):
    refused = api.get(f"{ACCOUNT}/workspace/{shared_workspace.pk}/audit-log/")  # user is a member
    assert refused.status_code == 403
    assert refused.json() == {"detail": MSG_ONLY_OWNER_READS}
    mine = workspace_services.workspace_ensure_default(user=user)
    assert other_api.get(f"{ACCOUNT}/workspace/{mine.pk}/audit-log/").status_code == 404
    assert anon.get(f"{ACCOUNT}/workspace/{mine.pk}/audit-log/").status_code == 401
    assert api.get(f"{ACCOUNT}/workspace/not-a-uuid/audit-log/").status_code == 404


def test_deleting_a_task_logs_the_task_once_not_each_version_it_took(api, user, workspace, tmp_path):
    task = TaskFactory(workspace=workspace, name="Pets")
    add_trained_version(task, 1, tmp_path)
    old = add_trained_version(task, 2, tmp_path)
    from apps.tasks.models import Task

    Task.objects.filter(pk=task.pk).update(production_version=1)
    assert api.delete(f"{API}/model/{old.pk}/").status_code == 204
    assert api.delete(f"{API}/task/{task.pk}/").status_code == 204

    events = _log(api, workspace)
    assert [e["action"] for e in events] == ["task.deleted", "version.deleted"]
    assert events[0]["target_name"] == "Pets" and events[0]["actor"] == user.username
    assert events[1]["details"] == {"task": str(task.pk), "version": 2}


def test_a_label_deleted_is_logged(api, user, workspace):
    label = api.post(f"{API}/label/", {"name": "cat"}, format="json").json()
    assert api.delete(f"{API}/label/{label['id']}/").status_code == 204
    (event,) = _log(api, workspace)
    assert (event["action"], event["target_name"], event["actor"]) == ("label.deleted", "cat", user.username)


def test_a_deleted_workspace_and_new_tokens_are_in_the_admins_log(api, user):
    team = workspace_services.workspace_create(owner=user, name="Short-lived")
    assert api.delete(f"{ACCOUNT}/workspace/{team.pk}/").status_code == 204
    gone = AuditEvent.objects.get(action="workspace.deleted")
    assert (gone.workspace_id, gone.workspace_name, gone.actor) == (None, "Short-lived", user)
    newcomer = UserFactory()
    workspace_services.token_get_or_create(user=newcomer)
    assert AuditEvent.objects.filter(action="token.created", target_id=str(newcomer.pk)).exists()

    admin = UserFactory(is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    page = browser.get("/admin/audit/auditevent/")
    assert page.status_code == 200 and b"Short-lived" in page.content
    assert browser.get(f"/admin/audit/auditevent/{gone.pk}/delete/").status_code == 403  # a record


def test_a_sign_in_lockout_is_logged_with_the_username_and_address(anon, user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(6):  # locked at the third; the refusals after it are the same lock
        anon.post(
            f"{ACCOUNT}/token/",
            {"username": user.username, "password": "wrong"},
            format="json",
            REMOTE_ADDR="192.0.2.9",
        )
    event = AuditEvent.objects.get(action="signin.locked_out")
    assert event.target_name == user.username and event.ip == "192.0.2.9"


def test_the_log_is_paged_like_the_other_lists(api, user):
    team = workspace_services.workspace_create(owner=user, name="Busy")
    for n in range(30):
        TaskFactory(workspace=team, name=f"t{n}").delete()
    page = api.get(f"{ACCOUNT}/workspace/{team.pk}/audit-log/?page_size=10").json()
    assert page["count"] == 30 and len(page["results"]) == 10 and page["next"]
    assert page["results"][0]["target_name"] == "t29"  # newest first


def test_the_console_shows_the_owner_the_log_and_refuses_a_member(user, other_user, shared_workspace):
    mine = workspace_services.workspace_ensure_default(user=user)
    TaskFactory(workspace=mine, name="Gone").delete()
    owner = Client()
    owner.force_login(user)
    page = owner.get("/console/workspace/audit-log/").content.decode()
    assert "Task deleted" in page and "Gone" in page and "1 event." in page
    assert "/console/workspace/audit-log/" in owner.get("/console/workspace/members/").content.decode()

    member = Client()
    member.force_login(user)
    member.post("/console/workspace/switch/", {"workspace": str(shared_workspace.pk)})
    refused = member.get("/console/workspace/audit-log/")
    assert refused.status_code == 403 and html.escape(MSG_ONLY_OWNER_READS) in refused.content.decode()


def test_webhooks_added_and_deleted_are_logged(api, user, workspace, settings):
    settings.VF_WEBHOOKS_ALLOWED_HOSTS = ["hooks.example.com"]
    from apps.webhooks.models import Webhook

    hook = Webhook.objects.create(
        workspace=workspace, url="https://hooks.example.com/x", events=["ping"], secret="s"
    )
    hook.delete()
    deleted, created = _log(api, workspace)
    assert (created["action"], created["target_name"]) == ("webhook.created", "https://hooks.example.com/x")
    assert deleted["action"] == "webhook.deleted"
