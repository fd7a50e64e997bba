import uuid

import pytest

from apps.workspaces import services
from apps.workspaces.models import Membership, Workspace
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_every_user_gets_a_default_workspace_listed_as_a_bare_array(api, user):
    response = api.get("/account/v2/workspace/")
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert len(body) == 1
    (workspace,) = body
    assert set(workspace) == {"id", "name", "created", "owner", "meta_data", "is_default"}
    assert workspace["name"] == "Default"
    assert workspace["is_default"] is True
    assert workspace["owner"] == user.username
    assert workspace["meta_data"] == {}


def test_it_answers_without_the_trailing_slash_too(api):
    assert api.get("/account/v2/workspace").status_code == 200
    assert api.get("/account/v2/user").status_code == 200


def test_it_creates_a_workspace_owned_by_the_caller(api, user):
    response = api.post("/account/v2/workspace/", {"name": "Team", "meta_data": {"k": "v"}}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Team"
    assert body["meta_data"] == {"k": "v"}
    assert body["is_default"] is False
    workspace = Workspace.objects.get(pk=body["id"])
    assert workspace.owner == user
    assert Membership.objects.get(workspace=workspace, user=user).role == "owner"
    assert len(api.get("/account/v2/workspace/").json()) == 2


@pytest.mark.parametrize(
    ("payload", "field"),
    [({}, "name"), ({"name": ""}, "name"), ({"name": "x", "meta_data": [1, 2]}, "meta_data")],
)
def test_it_rejects_a_bad_workspace_and_creates_nothing(api, payload, field):
    before = Workspace.objects.count()
    response = api.post("/account/v2/workspace/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Workspace.objects.count() == before


def test_user_details_and_alias(api, user, workspace):
    for path in ("/account/v2/user/", "/account/v2/details/"):
        response = api.get(path)
        assert response.status_code == 200
        assert response.json() == {
            "id": user.id,
            "email": user.email,
            "first_name": "",
            "last_name": "",
            "default_workspace": str(workspace.id),
        }


@pytest.mark.parametrize("path", ["/account/v2/workspace/", "/account/v2/user/", "/account/v2/details/"])
def test_no_token_is_a_401(anon, path):
    assert anon.get(path).status_code == 401


def test_a_bad_token_is_a_401(anon):
    anon.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert anon.get("/account/v2/workspace/").status_code == 401


def test_another_users_workspace_is_a_404_on_every_workspace_endpoint(api, other_api, other_user):
    theirs = services.workspace_ensure_default(user=other_user)
    before = Workspace.objects.get(pk=theirs.pk)
    base = f"/account/v2/workspace/{theirs.id}/"
    assert api.get(base).status_code == 404
    assert api.patch(base, {"name": "mine now"}, format="json").status_code == 404
    assert api.put(base, {"name": "mine now"}, format="json").status_code == 404
    assert api.delete(base).status_code == 404
    assert api.get(base + "members/").status_code == 404
    assert api.post(base + "members/", {"username": "x"}, format="json").status_code == 404
    assert api.delete(base + f"members/{other_user.id}/").status_code == 404
    after = Workspace.objects.get(pk=theirs.pk)
    assert (after.name, after.meta_data) == (before.name, before.meta_data)
    assert Membership.objects.filter(workspace=theirs).count() == 1


def test_an_unknown_or_malformed_workspace_id_is_a_404(api):
    assert api.get(f"/account/v2/workspace/{uuid.uuid4()}/").status_code == 404
    assert api.get("/account/v2/workspace/not-a-uuid/").status_code == 404


def test_the_owner_adds_and_removes_members_by_username_or_email(api, user, client_for):
    team = services.workspace_create(owner=user, name="Team")
    alice, bob = UserFactory(), UserFactory()
    base = f"/account/v2/workspace/{team.id}/members/"

    response = api.post(base, {"username": alice.username}, format="json")
    assert response.status_code == 201
    assert response.json()["username"] == alice.username
    assert response.json()["role"] == "member"
    assert api.post(base, {"email": bob.email.upper()}, format="json").status_code == 201
    assert {m["username"] for m in api.get(base).json()} == {user.username, alice.username, bob.username}

    # A member sees the workspace and can rename it, but cannot manage members or delete it.
    alice_api = client_for(alice)
    assert team.id.hex in {uuid.UUID(w["id"]).hex for w in alice_api.get("/account/v2/workspace/").json()}
    assert (
        alice_api.patch(f"/account/v2/workspace/{team.id}/", {"name": "Renamed"}, format="json").status_code
        == 200
    )
    assert alice_api.post(base, {"username": "someone"}, format="json").status_code == 403
    assert alice_api.delete(f"{base}{bob.id}/").status_code == 403
    assert alice_api.delete(f"/account/v2/workspace/{team.id}/").status_code == 403

    assert api.delete(f"{base}{alice.id}/").status_code == 204
    assert alice_api.get(f"/account/v2/workspace/{team.id}/").status_code == 404


def test_adding_members_rejects_unknown_users_duplicates_and_removing_the_owner(api, user):
    team = services.workspace_create(owner=user, name="Team")
    base = f"/account/v2/workspace/{team.id}/members/"
    response = api.post(base, {"username": "nobody-by-this-name"}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": services.MSG_USER_NOT_FOUND}
    assert api.post(base, {}, format="json").status_code == 400
    response = api.post(base, {"username": user.username}, format="json")
    assert response.json() == {"detail": services.MSG_ALREADY_MEMBER}
    response = api.delete(f"{base}{user.id}/")
    assert response.status_code == 409
    assert response.json() == {"detail": services.MSG_OWNER_CANNOT_LEAVE}


def test_the_owner_deletes_a_workspace_but_not_the_default_one(api, user, workspace):
    team = services.workspace_create(owner=user, name="Team")
    assert api.delete(f"/account/v2/workspace/{team.id}").status_code == 204
    assert not Workspace.objects.filter(pk=team.pk).exists()
    response = api.delete(f"/account/v2/workspace/{workspace.id}/")
    assert response.status_code == 409
    assert response.json() == {"detail": services.MSG_DEFAULT_CANNOT_BE_DELETED}


def test_token_endpoint_exchanges_credentials_for_the_token(anon, user, token):
    response = anon.post(
        "/account/v2/token/", {"username": user.username, "password": "pw-123456"}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {"token": token}
    response = anon.post(
        "/account/v2/token/", {"username": user.username, "password": "wrong"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["non_field_errors"] == ["Unable to log in with the given username and password."]


def test_a_body_over_the_limit_is_a_json_413_and_changes_nothing(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    before = Workspace.objects.count()
    response = api.post("/account/v2/workspace/", {"name": "x" * 5000}, format="json")
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body is too large."}
    assert Workspace.objects.count() == before
