import uuid

import pytest
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory, force_authenticate

from apps.workspaces import services
from apps.workspaces.tenancy import MSG_WORKSPACE_INVALID, MSG_WORKSPACE_NOT_FOUND, resolve_workspace
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
factory = APIRequestFactory()


def _request(method, user, path="/x/", data=None, fmt="json"):
    raw = getattr(factory, method)(path, data, format=fmt)
    force_authenticate(raw, user=user)
    request = Request(raw, parsers=[JSONParser(), FormParser(), MultiPartParser()])
    request.user = user
    return request


def test_it_uses_the_callers_default_workspace_when_none_is_named(user, workspace):
    assert resolve_workspace(_request("get", user)) == workspace


def test_it_takes_the_workspace_from_the_query_string(user):
    team = services.workspace_create(owner=user, name="Team")
    assert resolve_workspace(_request("get", user, f"/x/?workspace={team.id}")) == team
    assert resolve_workspace(_request("delete", user, f"/x/?workspace={team.id}")) == team


@pytest.mark.parametrize("fmt", ["json", "multipart"])
def test_it_takes_the_workspace_from_the_body(user, fmt):
    team = services.workspace_create(owner=user, name="Team")
    assert resolve_workspace(_request("post", user, data={"workspace": str(team.id)}, fmt=fmt)) == team


def test_a_member_resolves_a_shared_workspace(user):
    owner = UserFactory()
    team = services.workspace_create(owner=owner, name="Team")
    services.membership_add(workspace=team, actor=owner, username_or_email=user.username)
    assert resolve_workspace(_request("get", user, f"/x/?workspace={team.id}")) == team


def test_an_unknown_workspace_is_a_404(user):
    with pytest.raises(NotFound, match=MSG_WORKSPACE_NOT_FOUND):
        resolve_workspace(_request("get", user, f"/x/?workspace={uuid.uuid4()}"))


@pytest.mark.parametrize("value", ["", "not-a-uuid", "1234"])
def test_a_workspace_that_is_not_an_id_is_a_400_not_the_default_one(user, value):
    with pytest.raises(ValidationError) as refused:
        resolve_workspace(_request("get", user, f"/x/?workspace={value}"))
    assert refused.value.detail == {"workspace": [MSG_WORKSPACE_INVALID]}
    with pytest.raises(ValidationError):
        resolve_workspace(_request("patch", user, data={"workspace": value}))


def test_the_ximilar_clients_name_for_the_default_workspace_is_the_default_one(user, workspace):
    assert resolve_workspace(_request("patch", user, data={"workspace": "Default"})) == workspace


def test_another_users_workspace_is_a_404_not_a_403(user, other_user):
    theirs = services.workspace_ensure_default(user=other_user)
    with pytest.raises(NotFound):
        resolve_workspace(_request("get", user, f"/x/?workspace={theirs.id}"))
    with pytest.raises(NotFound):
        resolve_workspace(_request("patch", user, data={"workspace": str(theirs.id)}))


@pytest.mark.parametrize("value", ["Default", "default"])
def test_the_clients_default_alias_names_the_callers_default_workspace(user, workspace, value):
    assert resolve_workspace(_request("post", user, data={"workspace": value})) == workspace
    assert resolve_workspace(_request("get", user, f"/x/?workspace={value}")) == workspace
