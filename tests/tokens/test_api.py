"""workspace/{id}/tokens/ through the API: 401, 404 (another workspace), 403 (a member, a scoped
token), 400 (bad input, with the message), the happy paths with the exact fields, and the key
shown once and stored only as a hash."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.tokens import services
from apps.tokens.models import ScopedToken
from apps.tokens.scopes import MSG_ACCOUNT
from apps.workspaces.services import workspace_create, workspace_delete

TOKEN_FIELDS = {"id", "workspace", "name", "scope", "prefix", "created", "created_by", "expires", "last_used"}


def base(workspace) -> str:
    return f"/account/v2/workspace/{workspace.id}/tokens/"


def scoped_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def issued(workspace, user):
    return services.scoped_token_create(workspace=workspace, actor=user, name="CI", scope="read-only")


@pytest.mark.django_db
def test_the_owner_issues_a_token_whose_key_is_shown_once_and_stored_hashed(api, workspace, user):
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    response = api.post(
        base(workspace),
        {"name": " Shop camera ", "scope": "classify-only", "expires": expires.isoformat()},
        format="json",
    )
    assert response.status_code == 201, response.content
    answer = response.json()
    assert set(answer) == TOKEN_FIELDS | {"key"}
    key = answer["key"]
    assert key.startswith("vfs_") and len(key) == 44
    assert answer["name"] == "Shop camera"
    assert answer["scope"] == "classify-only"
    assert answer["prefix"] == key[:12]
    assert answer["created_by"] == user.username
    assert answer["last_used"] is None
    token = ScopedToken.objects.get(pk=answer["id"])
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(ScopedToken.objects.filter(pk=token.pk).values().first())
    assert token.expires == expires
    # Never again: neither the list nor the token's own page has the key.
    listed = api.get(base(workspace)).json()["results"]
    assert [set(item) for item in listed] == [TOKEN_FIELDS]
    assert set(api.get(f"{base(workspace)}{token.id}/").json()) == TOKEN_FIELDS
    event = AuditEvent.objects.get(action="token.created", target_type="scoped_token")
    assert (event.workspace_id, event.target_name, event.actor_id) == (workspace.id, "Shop camera", user.id)
    assert event.details["scope"] == "classify-only"


@pytest.mark.django_db
def test_revoking_a_token_refuses_its_key_at_the_next_request(api, workspace, issued):
    token, key = issued
    client = scoped_client(key)
    assert client.get("/recognition/v2/task/").status_code == 200
    assert api.delete(f"{base(workspace)}{token.id}/").status_code == 204
    response = client.get("/recognition/v2/task/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}
    assert api.get(f"{base(workspace)}{token.id}/").status_code == 404
    assert AuditEvent.objects.filter(action="token.revoked", target_id=str(token.id)).count() == 1


@pytest.mark.django_db
def test_a_token_deleted_by_another_process_is_refused_at_once(workspace, issued):
    # Nothing caches a scoped token: a delete elsewhere (the admin, another machine) is seen by
    # the next request here.
    token, key = issued
    client = scoped_client(key)
    assert client.get("/recognition/v2/label/").status_code == 200
    ScopedToken.objects.filter(pk=token.pk).delete()
    assert client.get("/recognition/v2/label/").status_code == 401


@pytest.mark.django_db
def test_an_expired_token_is_a_401(workspace, issued):
    token, key = issued
    ScopedToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1))
    response = scoped_client(key).get("/recognition/v2/task/")
    assert response.status_code == 401
    assert response.json() == {"detail": "The token has expired."}


@pytest.mark.django_db
def test_a_token_of_a_deactivated_owner_is_a_401(workspace, user, issued):
    _token, key = issued
    user.is_active = False
    user.save()
    assert scoped_client(key).get("/recognition/v2/task/").status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["vfs_" + "A" * 40, "vfs_short", "vfs_" + "A" * 60])
def test_an_unknown_scoped_key_is_a_401(db, key):
    response = scoped_client(key).get("/recognition/v2/task/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


@pytest.mark.django_db
def test_last_used_is_noted_at_most_once_a_minute(workspace, issued):
    token, key = issued
    client = scoped_client(key)
    client.get("/recognition/v2/task/")
    first = ScopedToken.objects.get(pk=token.pk).last_used
    assert first is not None
    client.get("/recognition/v2/task/")
    assert ScopedToken.objects.get(pk=token.pk).last_used == first
    ScopedToken.objects.filter(pk=token.pk).update(last_used=first - timedelta(minutes=2))
    client.get("/recognition/v2/task/")
    assert ScopedToken.objects.get(pk=token.pk).last_used > first


@pytest.mark.django_db
def test_no_token_is_a_401(anon, workspace, issued):
    token, _key = issued
    assert anon.get(base(workspace)).status_code == 401
    assert anon.post(base(workspace), {"name": "x", "scope": "full"}, format="json").status_code == 401
    assert anon.get(f"{base(workspace)}{token.id}/").status_code == 401
    assert anon.delete(f"{base(workspace)}{token.id}/").status_code == 401


@pytest.mark.django_db
def test_another_workspace_is_a_404(other_api, workspace, issued):
    token, _key = issued
    assert other_api.get(base(workspace)).status_code == 404
    assert other_api.post(base(workspace), {"name": "x", "scope": "full"}, format="json").status_code == 404
    assert other_api.get(f"{base(workspace)}{token.id}/").status_code == 404
    assert other_api.delete(f"{base(workspace)}{token.id}/").status_code == 404
    assert ScopedToken.objects.filter(pk=token.pk).exists()


@pytest.mark.django_db
def test_a_token_of_another_workspace_is_a_404_in_this_one(api, user, workspace, issued):
    other = workspace_create(owner=user, name="Other")
    token, _key = issued
    assert api.get(f"{base(other)}{token.id}/").status_code == 404
    assert api.delete(f"{base(other)}{token.id}/").status_code == 404


@pytest.mark.django_db
def test_a_member_who_is_not_the_owner_gets_a_403(api, shared_workspace):
    response = api.get(base(shared_workspace))
    assert response.status_code == 403
    assert response.json() == {"detail": services.MSG_ONLY_OWNER}
    assert api.post(base(shared_workspace), {"name": "x", "scope": "full"}, format="json").status_code == 403
    assert not ScopedToken.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("scope", ["read-only", "classify-only", "full"])
def test_a_scoped_token_cannot_manage_tokens(workspace, user, scope):
    token, key = services.scoped_token_create(workspace=workspace, actor=user, name="t", scope=scope)
    client = scoped_client(key)
    for response in (
        client.get(base(workspace)),
        client.post(base(workspace), {"name": "more", "scope": "full"}, format="json"),
        client.delete(f"{base(workspace)}{token.id}/"),
    ):
        assert response.status_code == 403
        assert response.json() == {"detail": MSG_ACCOUNT.format(scope=scope)}
    assert list(ScopedToken.objects.values_list("pk", flat=True)) == [token.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "   ", "scope": "full"}, {"name": ["This field may not be blank."]}),
        (
            {"name": "x" * 101, "scope": "full"},
            {"name": ["Ensure this field has no more than 100 characters."]},
        ),
        ({"name": "x", "scope": "admin"}, {"scope": ['"admin" is not a valid choice.']}),
        ({"name": "x"}, {"scope": ["This field is required."]}),
        ({"name": 5, "scope": "full"}, {"name": ["Not a valid string."]}),
        (
            {"name": "x", "scope": "full", "expires": "2001-01-01T00:00:00Z"},
            {"detail": services.MSG_EXPIRES_PAST},
        ),
        ({"name": "x", "scope": "full", "expires": "soon"}, None),
    ],
)
def test_bad_input_is_a_400_and_issues_nothing(api, workspace, body, message):
    response = api.post(base(workspace), body, format="json")
    assert response.status_code == 400, response.content
    if message is not None:
        assert response.json() == message
    else:
        assert "expires" in response.json()
    assert not ScopedToken.objects.exists()


@pytest.mark.django_db
def test_a_workspace_at_its_limit_of_tokens_is_a_409(api, workspace, user, monkeypatch):
    monkeypatch.setattr(services, "MAX_TOKENS_PER_WORKSPACE", 2)
    for name in ("a", "b"):
        services.scoped_token_create(workspace=workspace, actor=user, name=name, scope="full")
    response = api.post(base(workspace), {"name": "c", "scope": "full"}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": services.MSG_TOO_MANY}
    assert ScopedToken.objects.count() == 2


@pytest.mark.django_db
def test_deleting_the_workspace_deletes_its_tokens_without_a_revoke_event_each(api, user, issued):
    team = workspace_create(owner=user, name="Team")
    services.scoped_token_create(workspace=team, actor=user, name="t", scope="full")
    workspace_delete(workspace=team, actor=user)
    assert ScopedToken.objects.count() == 1  # the default workspace's
    assert not AuditEvent.objects.filter(action="token.revoked").exists()


@pytest.mark.django_db
def test_a_scoped_call_reads_its_token_workspace_and_owner_in_one_query_and_caches_nothing(
    workspace, issued, settings, django_assert_num_queries
):
    from django.core.cache import cache

    settings.VF_TOKEN_CACHE_SECONDS = 300  # the user-token cache on, as with Redis
    cache.clear()
    _token, key = issued
    client = scoped_client(key)
    with django_assert_num_queries(3):  # the token joined to its workspace and owner, last_used, count
        assert client.get("/recognition/v2/task/").status_code == 200
    with django_assert_num_queries(
        2
    ):  # the token again (nothing cached: a revocation is seen at once), count
        assert client.get("/recognition/v2/task/").status_code == 200
    ScopedToken.objects.all().delete()
    assert client.get("/recognition/v2/task/").status_code == 401
