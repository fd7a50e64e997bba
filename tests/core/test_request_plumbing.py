"""The request path's plumbing: the Redis cache's shared client and the filter backend that skips
django-filter when no filter is asked for."""

from __future__ import annotations

from unittest import mock

import pytest
from django_filters.rest_framework import DjangoFilterBackend

from apps.core.cache import RedisCache
from apps.tasks.models import Task

pytestmark = pytest.mark.django_db


def test_the_redis_cache_hands_out_one_client_per_pool():
    # Building a client connects nowhere, so no server is needed here.
    cache = RedisCache("redis://127.0.0.1:6379/1", {})
    client = cache._cache.get_client("key", write=True)
    assert cache._cache.get_client("other") is client
    assert client.connection_pool is cache._cache._get_connection_pool(True)


def test_the_redis_cache_keeps_one_client_per_server():
    cache = RedisCache("redis://127.0.0.1:6379/1,redis://127.0.0.1:6379/2", {})
    writer = cache._cache.get_client(write=True)
    reader = cache._cache.get_client(write=False)  # reads go to the replica
    assert writer is not reader
    assert cache._cache.get_client(write=False) is reader
    assert reader.connection_pool.connection_kwargs["db"] == 2


@pytest.mark.parametrize("query", ["", "?page=1", "?page_size=10&workspace=default", "?format=json"])
def test_a_list_without_filter_parameters_builds_no_filterset(api, workspace, query):
    Task.objects.create(workspace=workspace, name="pets")
    with mock.patch.object(DjangoFilterBackend, "get_filterset") as get_filterset:
        response = api.get(f"/recognition/v2/task/{query}")
    assert response.status_code == 200
    assert response.json()["count"] == 1
    get_filterset.assert_not_called()


@pytest.mark.parametrize(("query", "count"), [("?search=pet", 1), ("?search=dog", 0), ("?unknown=1", 1)])
def test_a_filter_parameter_still_filters(api, workspace, query, count):
    Task.objects.create(workspace=workspace, name="pets")
    response = api.get(f"/recognition/v2/task/{query}")
    assert response.status_code == 200
    assert response.json()["count"] == count


def test_a_bad_filter_value_is_still_a_400(api):
    response = api.get("/recognition/v2/task/?type=nonsense")
    assert response.status_code == 400
    assert "type" in response.json()
