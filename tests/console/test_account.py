"""Sign-in, sign-out, password change, login throttling, the workspace switcher and members."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.workspaces import services as workspace_services
from apps.workspaces.models import Membership

PASSWORD = "pw-123456"  # tests.factories.UserFactory's


def _sign_in(client: Client, username: str, password: str, address: str = "198.51.100.4"):
    return client.post("/console/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.django_db
def test_a_page_without_a_session_sends_to_the_sign_in_page():
    response = Client().get("/console/tasks/")
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/?next=/console/tasks/")


def test_signing_in_with_the_api_users_password_opens_the_console(user):
    client = Client()
    assert _sign_in(client, user.username, PASSWORD)["Location"] == "/console/"
    response = client.get("/console/tasks/")
    assert response.status_code == 200
    assert user.username.encode() in response.content
    assert b'href="/api/docs/"' in response.content and b'href="/admin/"' in response.content


def test_a_wrong_password_shows_an_error_and_no_session(user):
    client = Client()
    response = _sign_in(client, user.username, "wrong")
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert client.get("/console/tasks/").status_code == 302


def test_the_sign_in_form_needs_its_csrf_token(user):
    client = Client(enforce_csrf_checks=True)
    assert _sign_in(client, user.username, PASSWORD).status_code == 403
    page = client.get("/console/login/")
    token = page.cookies["csrftoken"].value
    response = client.post(
        "/console/login/", {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


def test_repeated_wrong_passwords_lock_the_console_login_out_like_the_api(user, settings):
    client = Client()
    answers = [
        _sign_in(client, user.username, "wrong").status_code for _ in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert answers == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]  # the last failure locks
    locked = _sign_in(client, user.username, PASSWORD)  # the right password, too late
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert client.get("/console/tasks/").status_code == 302  # not signed in
    # The same counter as the API's token endpoint: it refuses this username now as well.
    api = Client().post("/account/v2/token/", {"username": user.username, "password": PASSWORD})
    assert api.status_code == 429


def test_sign_out_is_a_post_and_ends_the_session(console):
    assert console.get("/console/logout/").status_code == 405
    assert console.post("/console/logout/").status_code == 302
    assert console.get("/console/tasks/").status_code == 302


def test_the_password_change_checks_the_old_password_then_changes_it(console, user):
    refused = console.post(
        "/console/password/",
        {
            "old_password": "wrong",
            "new_password1": "a-much-longer-pw-9",
            "new_password2": "a-much-longer-pw-9",
        },
    )
    assert refused.status_code == 200
    assert b"Your old password was entered incorrectly" in refused.content
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    done = console.post(
        "/console/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-much-longer-pw-9",
            "new_password2": "a-much-longer-pw-9",
        },
    )
    assert done["Location"] == "/console/password/done/"
    user.refresh_from_db()
    assert user.check_password("a-much-longer-pw-9")


def test_the_switcher_lists_the_users_workspaces_and_switches_to_a_shared_one(console, shared_workspace):
    assert shared_workspace.name.encode() in console.get("/console/tasks/").content
    console.post("/console/workspace/switch/", {"workspace": str(shared_workspace.id)})
    response = console.get("/console/tasks/")
    assert f"Tasks in {shared_workspace.name}".encode() in response.content


def test_switching_to_a_workspace_the_user_is_not_in_is_a_404(console, other_user):
    foreign = workspace_services.workspace_ensure_default(user=other_user)
    response = console.post("/console/workspace/switch/", {"workspace": str(foreign.id)})
    assert response.status_code == 404
    assert b"Tasks in Default" in console.get("/console/tasks/").content


def test_the_owner_adds_members_by_username_or_email_and_removes_them(console, user, workspace):
    third = get_user_model().objects.create_user("carol", email="carol@example.com", password="x")
    fourth = get_user_model().objects.create_user("dave", email="dave@example.com", password="x")
    assert console.post("/console/workspace/members/", {"username_or_email": "carol"}).status_code == 302
    assert (
        console.post("/console/workspace/members/", {"username_or_email": "DAVE@example.com"}).status_code
        == 302
    )
    assert set(workspace.memberships.values_list("user__username", flat=True)) == {
        user.username,
        "carol",
        "dave",
    }

    unknown = console.post("/console/workspace/members/", {"username_or_email": "nobody"})
    assert unknown.status_code == 404
    assert b"No user with this username or email." in unknown.content
    again = console.post("/console/workspace/members/", {"username_or_email": "carol"})
    assert again.status_code == 400
    assert b"already a member" in again.content

    console.post(f"/console/workspace/members/{third.pk}/remove/")
    assert not Membership.objects.filter(workspace=workspace, user=third).exists()
    assert Membership.objects.filter(workspace=workspace, user=fourth).exists()


def test_a_member_who_is_not_the_owner_cannot_change_the_members(console, shared_workspace, other_user):
    console.post("/console/workspace/switch/", {"workspace": str(shared_workspace.id)})
    page = console.get("/console/workspace/members/")
    assert b"Only the owner" in page.content
    before = set(shared_workspace.memberships.values_list("user_id", flat=True))
    third = get_user_model().objects.create_user("erin", password="x")
    refused = console.post("/console/workspace/members/", {"username_or_email": "erin"})
    assert refused.status_code == 403
    console.post(f"/console/workspace/members/{other_user.pk}/remove/")
    assert set(shared_workspace.memberships.values_list("user_id", flat=True)) == before
    assert third.pk not in before


def test_the_admin_keeps_its_own_sign_out_page(admin_client):
    response = admin_client.post("/admin/logout/")
    assert response.status_code == 200
    assert b"Logged out" in response.content


def test_signing_in_returns_to_the_page_asked_for_but_never_to_another_site(user):
    client = Client()
    body = {"username": user.username, "password": PASSWORD}
    assert client.post("/console/login/?next=/console/workspace/members/", body)["Location"] == (
        "/console/workspace/members/"
    )
    client = Client()
    assert client.post("/console/login/?next=https://evil.example/", body)["Location"] == "/console/"
