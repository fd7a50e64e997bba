"""The request path's plumbing: the Redis cache's shared client."""

from __future__ import annotations

import pytest

from apps.core.cache import RedisCache

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
