"""The per-process model cache: LRU eviction and one load per key under concurrency."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest

from apps.inference import cache as model_cache
from apps.inference.cache import LRUCache


def test_it_evicts_the_least_recently_used_version():
    cache = LRUCache(2)
    cache.get("a", lambda: "A")
    cache.get("b", lambda: "B")
    assert cache.get("a", lambda: pytest.fail("a is cached")) == "A"  # a is now the most recent
    cache.get("c", lambda: "C")
    assert cache.keys() == ["a", "c"]
    assert cache.get("b", lambda: "B again") == "B again"  # b was evicted and loads again
    assert cache.keys() == ["c", "b"]
    assert cache.loads == 4


def test_concurrent_gets_of_one_key_load_it_once():
    cache = LRUCache(4)
    loads = []
    release = threading.Event()

    def slow_loader():
        loads.append(1)
        release.wait(5)
        return object()

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.get, "v1", slow_loader) for _ in range(8)]
        time.sleep(0.2)  # every thread is waiting on the one load in flight
        release.set()
        values = [future.result(timeout=10) for future in futures]
    assert len(loads) == 1
    assert all(value is values[0] for value in values)


def test_different_keys_load_in_parallel():
    cache = LRUCache(4)
    both_started = threading.Barrier(2, timeout=5)

    def loader(name):
        both_started.wait()  # would time out if the loads ran one after the other
        return name

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda key: cache.get(key, lambda: loader(key)), ["v1", "v2"]))
    assert results == ["v1", "v2"]


def test_a_failed_load_is_not_cached_and_can_be_retried():
    cache = LRUCache(2)

    def broken():
        raise FileNotFoundError("no artifacts")

    with pytest.raises(FileNotFoundError):
        cache.get("v1", broken)
    assert cache.keys() == []
    assert cache.get("v1", lambda: "loaded") == "loaded"


def test_the_process_cache_follows_the_size_setting(settings):
    settings.VF_MODEL_CACHE_SIZE = 3
    assert model_cache.model_cache().size == 3
    settings.VF_MODEL_CACHE_SIZE = 1
    assert model_cache.model_cache().size == 1


class _Version:
    """A loaded version that, like a real predictor, sits in a reference cycle."""

    def __init__(self):
        self.itself = self


def test_an_evicted_version_is_freed_at_once_even_inside_a_reference_cycle():
    cache = LRUCache(1)
    held = [_Version()]
    gone = weakref.ref(held[0])
    cache.get("v1", held.pop)  # the cache holds the only reference
    gc.disable()  # only the cache's own collection may free the cycle
    try:
        cache.get("v2", _Version)
        assert cache.keys() == ["v2"]
        assert gone() is None
    finally:
        gc.enable()


def test_releasing_memory_after_loads_is_safe_where_malloc_trim_is_missing(monkeypatch):
    monkeypatch.setattr(model_cache, "_trim", None)  # musl or macOS: no malloc_trim
    cache = LRUCache(1)
    cache.get("v1", _Version)
    cache.get("v2", _Version)
    assert cache.keys() == ["v2"] and cache.loads == 2
