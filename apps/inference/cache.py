"""A per-process LRU cache of loaded model versions, for prediction; the same for every kind of task.

Loading a version (download the artifacts once, then the task's kind hands ml/ the folder and
``VF_INFERENCE_MODE``: build the net, load the weights, trace and freeze it, warm it up) costs far
more than a forward pass, so each web process keeps the ``VF_MODEL_CACHE_SIZE`` most recently
used versions. The cache is keyed by the version row
(task id, version number and the row's id: a deleted version whose number is reused by a later
training never serves the old weights) and its served file (the FP32 ``model.onnx`` until the INT8
attempt after training keeps an INT8 file: every process then loads that file on its next request).
Which version a call uses is decided by the caller from the database on every request, so a
deployment takes effect at once without a restart.

Concurrent requests for a version that is not loaded yet wait on a per-key lock: the version is
loaded once, not once per request. Loads of different versions proceed in parallel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from django.conf import settings

from apps.core.kinds import KINDS
from apps.training import artifacts
from apps.training.models import ModelVersion

logger = logging.getLogger(__name__)


class LRUCache:
    """Thread-safe LRU of ``size`` values, each built at most once at a time by ``get``'s loader."""

    def __init__(self, size: int):
        self.size = max(1, int(size))
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()  # guards _items and _loading, never held while loading
        self._loading: dict[Hashable, threading.Lock] = {}
        self.loads = 0  # how many times a loader ran (tests and logs)

    def get(self, key: Hashable, loader: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            # Another request may have loaded it while this one waited for the key lock.
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            evicted: list = []
            try:
                value = loader()
                with self._lock:
                    self.loads += 1
                    self._items[key] = value
                    self._items.move_to_end(key)
                    while len(self._items) > self.size:
                        evicted.append(self._items.popitem(last=False))
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            if evicted:
                logger.info("model cache: evicted %s", ", ".join(str(k) for k, _ in evicted))
                evicted.clear()
            # What the load built and dropped (the torch model ONNX Runtime replaced, the graph
            # optimiser's buffers) and what eviction freed: ~100 MB of free heap a lite0 load
            # otherwise leaves with the process (BENCHMARKS.md, "Memory per web process").
            release_memory()
        return value

    def discard(self, keep: Callable[[Hashable], bool]) -> int:
        """Drop the cached values whose key ``keep`` refuses; how many went."""
        with self._lock:
            gone = [key for key in self._items if not keep(key)]
            for key in gone:
                del self._items[key]
        return len(gone)

    def keys(self) -> list:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (musl, macOS): it hands the C heap's free pages back to the
    system, which glibc otherwise keeps for the process (a freed ONNX session's buffers)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_trim = _malloc_trim()


def release_memory() -> None:
    """Free what a load left behind and what evicted versions held: reference cycles now, then the
    C heap's free pages (a few ms, next to a load's seconds)."""
    gc.collect()
    if _trim is not None:
        _trim(0)


# --------------------------------------------------------------------------- loading a version


# Torch work of this process, one at a time: a forward pass, or tracing and freezing a version
# being loaded. TorchScript's trace/freeze is not safe beside inference running in other threads
# (seen under load: bf16 freezing failed while requests classified with another version), and each
# forward already uses VF_INFERENCE_PASSES x VF_INFERENCE_THREADS threads (by default the cores),
# so two at once would only oversubscribe them.
TORCH_LOCK = threading.Lock()


def load_predictor(version: ModelVersion):
    """Load a TRAINED version from storage through its kind: optimised for inference, warmed up."""
    started = time.perf_counter()
    directory = artifacts.local_artifact_dir(version)  # the download runs outside the lock
    with TORCH_LOCK:
        predictor = KINDS.get(version.task.type).predictor.load(
            directory,
            mode=settings.VF_INFERENCE_MODE,
            num_threads=settings.VF_INFERENCE_THREADS or None,
            passes=settings.VF_INFERENCE_PASSES,
        )
    logger.info(
        "loaded model %s v%d (%s) in %.2f s",
        version.task_id,
        version.version,
        settings.VF_INFERENCE_MODE,
        time.perf_counter() - started,
    )
    return predictor


_cache: LRUCache | None = None
_cache_lock = threading.Lock()


def model_cache() -> LRUCache:
    """The process's cache, created on first use with ``VF_MODEL_CACHE_SIZE`` slots."""
    global _cache
    with _cache_lock:
        if _cache is None or _cache.size != max(1, settings.VF_MODEL_CACHE_SIZE):
            _cache = LRUCache(settings.VF_MODEL_CACHE_SIZE)
        return _cache


def predictor_get(version: ModelVersion):
    """The loaded predictor of a TRAINED version, from the cache or loaded once."""
    key = (str(version.task_id), version.version, str(version.pk), artifacts.served_file(version))
    cache = model_cache()
    found = cache.get(key, lambda: load_predictor(version))
    # The version switched to another served file (its INT8 attempt passed): the file it served
    # before is never asked for again, so it does not wait for the LRU to evict it.
    if cache.discard(lambda other: other[2] != key[2] or other == key):
        release_memory()
    return found
