"""The request path of a tiny authenticated call: what it queries, and that caching the token's
lookup never outlives a revocation."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token

from apps.workspaces.authentication import CachedTokenAuthentication, token_cache_key

pytestmark = pytest.mark.django_db

TASKS = "/recognition/v2/task/"


@pytest.fixture(autouse=True)
def token_cache(settings):
    """A token cache as with Redis (the default is none without a shared cache; see the last test)."""
    settings.VF_TOKEN_CACHE_SECONDS = 300
    cache.clear()


def test_a_tiny_list_reads_the_token_once_then_only_the_workspace_and_the_count(
    api, workspace, django_assert_num_queries
):
    with django_assert_num_queries(3):  # token (joined to its user), default workspace, count
        assert api.get(TASKS).json() == {"count": 0, "next": None, "previous": None, "results": []}
    with django_assert_num_queries(1):  # the token's user and default workspace come from the cache
        assert api.get(TASKS).status_code == 200


def test_a_cached_default_workspace_follows_its_changes(api, workspace):
    assert api.get(TASKS).status_code == 200  # cached now
    workspace.name = "Renamed"
    workspace.save()
    assert api.get("/account/v2/user/").json()["default_workspace"] == str(workspace.id)
    listed = {item["id"]: item["name"] for item in api.get("/account/v2/workspace/").json()}
    assert listed[str(workspace.id)] == "Renamed"


def test_health_asks_the_database_once(anon, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert anon.get("/health").status_code == 200


@pytest.mark.parametrize("how", ["instance", "queryset", "user deleted"])
def test_a_revoked_token_stops_working_at_once(api, user, token, how):
    assert api.get(TASKS).status_code == 200  # cached now
    if how == "instance":
        Token.objects.get(key=token).delete()
    elif how == "queryset":
        Token.objects.filter(user=user).delete()
    else:
        user.delete()
    assert api.get(TASKS).status_code == 401


def test_a_deactivated_user_is_refused_at_once(api, user):
    assert api.get(TASKS).status_code == 200
    user.is_active = False
    user.save()
    assert api.get(TASKS).status_code == 401


def test_the_cache_never_holds_the_password_hash_and_a_cached_user_cannot_erase_it(api, user, token):
    assert api.get(TASKS).status_code == 200
    cached = cache.get(token_cache_key(token))
    assert cached["user"]["id"] == user.pk and "password" not in cached["user"]
    assert token not in token_cache_key(token)  # keyed by a hash, not the token itself

    from_cache, _ = CachedTokenAuthentication().authenticate_credentials(token)
    from_cache.first_name = "Ada"
    from_cache.save()  # the password is deferred on a cached user: only loaded fields are written
    user.refresh_from_db()
    assert user.first_name == "Ada" and user.check_password("pw-123456")


def test_without_a_shared_cache_no_token_is_cached(api, token, settings, django_assert_num_queries):
    # The embedded default keeps a cache per process: a token deleted through one gunicorn worker
    # could not be forgotten by the others, so nothing is cached there.
    settings.VF_TOKEN_CACHE_SECONDS = 0
    for _ in range(2):
        with django_assert_num_queries(3):  # token and user, default workspace, count: every call
            assert api.get(TASKS).status_code == 200
    assert cache.get(token_cache_key(token)) is None
