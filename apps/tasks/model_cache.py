"""A per-process LRU cache of loaded model versions, for classify.

Loading a version (download the artifacts once, build the timm net, load the safetensors, trace
and freeze it, warm it up) costs far more than a forward pass, so each web process keeps the
``VF_MODEL_CACHE_SIZE`` most recently used versions. The cache is keyed by the version row
(task id, version number and the row's id: a deleted version whose number is reused by a later
training never serves the old weights). Which version a call uses is decided by the caller from
the database on every request, so a deployment takes effect at once without a restart.

Concurrent requests for a version that is not loaded yet wait on a per-key lock: the version is
loaded once, not once per request. Loads of different versions proceed in parallel.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import torch
from django.conf import settings

from ml.models import features_and_logits
from ml.predictor import Predictor

from . import artifacts
from .models import ModelVersion

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
            try:
                value = loader()
                with self._lock:
                    self.loads += 1
                    self._items[key] = value
                    self._items.move_to_end(key)
                    while len(self._items) > self.size:
                        evicted, _ = self._items.popitem(last=False)
                        logger.info("model cache: evicted %s", evicted)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
        return value

    def keys(self) -> list:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# --------------------------------------------------------------------------- loading a version

_torch_configured = False
_configure_lock = threading.Lock()


def configure_torch() -> None:
    """Bound torch's intra-op threads once per process (VF_INFERENCE_THREADS; README: gunicorn)."""
    global _torch_configured
    with _configure_lock:
        if _torch_configured:
            return
        threads = settings.VF_INFERENCE_THREADS
        if threads:
            torch.set_num_threads(threads)
        _torch_configured = True


class _FeaturesAndLogits(torch.nn.Module):
    """The predictor's forward as one module, so it can be traced as a whole.

    With ``dtype`` (bf16) the input is cast to it and the outputs back to float32, so the rest of
    the predictor (softmax, descriptor normalisation) is unchanged.
    """

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype | None = None):
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.dtype is not None:
            x = x.to(self.dtype)
        feats, logits = features_and_logits(self.model, x)
        return feats.float(), logits.float()


def _frozen(module: torch.nn.Module, predictor: Predictor) -> Callable:
    """TorchScript trace + freeze of ``module`` (BatchNorm folded into the convolutions).

    The traced graph is not specialised on the batch size (the tests check 1 and 10 images).
    """
    size = predictor.input_size
    example = torch.zeros((2, 3, size, size), device=predictor.device).contiguous(
        memory_format=torch.channels_last
    )
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # torch 2.x marks TorchScript deprecated; it is still the fastest lever measured here
        # (torch.compile: minutes of compiling per version on 2 cores, no faster; BENCHMARKS.md).
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.freeze(torch.jit.trace(module.eval(), example))


def amx_available() -> bool:
    """bf16 matrix units (Intel AMX): without them bf16 on CPU is emulated and slower."""
    try:
        return "amx_bf16" in open("/proc/cpuinfo").read()  # noqa: SIM115 - read once at load
    except OSError:
        return False


def accelerate(predictor: Predictor, mode: str) -> Predictor:
    """Swap the predictor's forward for the ``mode`` lever and warm it up.

    ``eager``: plain PyTorch. ``jit``: traced and frozen, float32. ``bf16``: traced and frozen
    with bfloat16 weights, only on a GPU or a CPU with AMX (else ``jit``). ``auto``: ``bf16`` on a
    CPU with AMX, else ``jit`` (what measured fastest with the same top-1, BENCHMARKS.md). Warming up runs the
    first, slow passes (profiling, graph optimisation) at load time instead of in a request.
    """
    if mode == "auto":
        mode = "bf16" if predictor.device.type == "cpu" and amx_available() else "jit"
    if mode == "bf16" and predictor.device.type == "cpu" and not amx_available():
        logger.warning("VF_INFERENCE_MODE=bf16 needs AMX on CPU; using jit")
        mode = "jit"
    if mode == "jit":
        predictor.forward_fn = _frozen(_FeaturesAndLogits(predictor.model), predictor)
    elif mode == "bf16":
        model = copy.deepcopy(predictor.model).to(torch.bfloat16)
        predictor.forward_fn = _frozen(_FeaturesAndLogits(model, torch.bfloat16), predictor)
    elif mode != "eager":
        raise ValueError(f"unknown inference mode {mode!r}")
    size = predictor.input_size
    warm = torch.zeros((2, 3, size, size), dtype=torch.uint8)
    for _ in range(2):
        predictor.predict_tensor(warm)
    return predictor


def load_predictor(version: ModelVersion) -> Predictor:
    """Load a TRAINED version from storage, optimised for inference and warmed up."""
    configure_torch()
    started = time.perf_counter()
    directory = artifacts.local_artifact_dir(version)
    predictor = Predictor.load(directory)
    accelerate(predictor, settings.VF_INFERENCE_MODE)
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


def predictor_get(version: ModelVersion) -> Predictor:
    """The loaded predictor of a TRAINED version, from the cache or loaded once."""
    key = (str(version.task_id), version.version, str(version.pk))
    return model_cache().get(key, lambda: load_predictor(version))
