"""The API tokens section of the console's Members page: issue (key shown once), list, revoke;
members who are not the owner see none of it; another workspace's token is a 404."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import Client

from apps.tokens import services
from apps.tokens.keys import key_hash
from apps.tokens.models import ScopedToken

MEMBERS = "/console/workspace/members/"
CREATE = "/console/workspace/tokens/"


@pytest.fixture
def console(user, workspace) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_owner_creates_a_token_and_sees_its_key_once(console, workspace, user):
    expires_on = date.today() + timedelta(days=10)
    response = console.post(
        CREATE, {"name": "Shop camera", "scope": "classify-only", "expires_on": expires_on}
    )
    assert response.status_code == 200
    token = ScopedToken.objects.get()
    page = response.content.decode()
    key = page.split('<code id="token-key">')[1].split("</code>")[0]
    assert key_hash(key) == token.key_hash
    assert (token.name, token.scope, token.workspace_id, token.created_by_id) == (
        "Shop camera",
        "classify-only",
        workspace.id,
        user.id,
    )
    assert token.expires == datetime.combine(expires_on, datetime.min.time(), tzinfo=UTC)
    # The list shows it without the key; a reload no longer has the key.
    again = console.get(MEMBERS).content.decode()
    assert key not in again
    assert "Shop camera" in again and token.prefix in again and "classify-only" in again


@pytest.mark.django_db
def test_the_owner_revokes_a_token(console, workspace, user):
    token, _key = services.scoped_token_create(workspace=workspace, actor=user, name="old", scope="full")
    response = console.post(f"/console/workspace/tokens/{token.id}/revoke/")
    assert response.status_code == 302
    assert not ScopedToken.objects.exists()
    assert "No API tokens yet." in console.get(MEMBERS).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "", "scope": "full"}, "This field is required."),
        ({"name": "x", "scope": "admin"}, "Select a valid choice."),
        ({"name": "x", "scope": "full", "expires_on": "2001-01-01"}, services.MSG_EXPIRES_PAST),
        ({"name": "x", "scope": "full", "expires_on": "soon"}, "Enter a valid date."),
    ],
)
def test_bad_input_shows_the_reason_and_issues_nothing(console, workspace, body, message):
    response = console.post(CREATE, body)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ScopedToken.objects.exists()


@pytest.mark.django_db
def test_a_member_who_is_not_the_owner_sees_no_tokens_and_cannot_issue_or_revoke(
    console, shared_workspace, other_user
):
    token, key = services.scoped_token_create(
        workspace=shared_workspace, actor=other_user, name="owner's", scope="full"
    )
    console.post("/console/workspace/switch/", {"workspace": str(shared_workspace.id)})
    page = console.get(MEMBERS).content.decode()
    assert "owner's" not in page and token.prefix not in page and "Create token" not in page
    assert console.post(CREATE, {"name": "mine", "scope": "full"}).status_code == 403
    console.post(f"/console/workspace/tokens/{token.id}/revoke/")
    assert list(ScopedToken.objects.values_list("name", flat=True)) == ["owner's"]


@pytest.mark.django_db
def test_another_workspaces_token_is_a_404(console, other_user):
    from apps.workspaces.services import workspace_ensure_default

    theirs = workspace_ensure_default(user=other_user)
    token, _key = services.scoped_token_create(
        workspace=theirs, actor=other_user, name="theirs", scope="full"
    )
    assert console.post(f"/console/workspace/tokens/{token.id}/revoke/").status_code == 404
    assert ScopedToken.objects.filter(pk=token.pk).exists()
