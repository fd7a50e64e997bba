"""Inference modes of a loaded predictor: ONNX Runtime, eager, TorchScript trace + freeze, bf16.

``accelerate(predictor, mode)`` swaps the predictor's forward for the faster equivalent the mode
names and warms it up; ``Predictor.load(directory, mode=...)`` calls it. ``auto`` is ``onnx``: the
version's ``model.onnx`` (the very file a download hands out: FP32, or INT8 where training found
it agrees with FP32) run by ONNX Runtime, on CUDA when its CUDA provider is installed; on a GPU
without it, ``auto`` is ``jit`` on CUDA. ``jit`` is float32 TorchScript, the same answers as the
eager model and the FP32 ONNX export within 1e-4. bf16 is faster on a CPU with AMX but moves
probabilities by up to a few hundredths (docs/operations.md, "Inference modes"), so it is served
only when asked for.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
import torch

from ml.models import features_and_logits

logger = logging.getLogger(__name__)


class Servable(Protocol):
    """What a mode needs of a loaded predictor (``ml.recognition.predictor.Predictor`` is one)."""

    model: torch.nn.Module | None  # None once ONNX Runtime serves (``accelerate``)
    device: torch.device
    input_size: int
    forward_fn: Callable
    onnx: OnnxRunner | None

    def predict_tensor(self, batch: torch.Tensor, descriptor: bool = False) -> list[dict]: ...

    def onnx_path(self, rewrite: bool = False) -> str | os.PathLike: ...


MODES = ("auto", "onnx", "jit", "bf16", "eager")


def onnx_providers() -> list[str]:
    """ONNX Runtime's providers to use: CUDA first when this onnxruntime build has it."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


_shared_arena_lock = threading.Lock()
_shared_arena_registered = False


def _share_cpu_arena(ort) -> None:
    """Register one CPU arena in ONNX Runtime's process-wide environment, once per process.

    Each session otherwise grows an arena of its own to its largest forward's activations (lite0,
    10 images at 224 px: ~240 MB) and keeps it while the version stays cached, so a web process
    holding 4 versions held ~1 GB of arenas that are never used at the same time (the service runs
    one forward at a time, ``apps/inference/cache.py``'s ``TORCH_LOCK``). Sessions made with
    ``session.use_env_allocators`` share this one instead: its size is one forward's peak, and
    each further version costs about its weights (BENCHMARKS.md, "Memory per web process").
    """
    global _shared_arena_registered
    with _shared_arena_lock:
        if _shared_arena_registered:
            return
        memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, -1, -1, -1))  # ORT's defaults
        _shared_arena_registered = True


def onnx_session(path: str | os.PathLike, num_threads: int | None = None):
    """An ONNX Runtime session of ``path`` as the service runs every served file: sequential
    execution on ``num_threads`` intra-op threads (None: one per core), the process's shared CPU
    arena (``_share_cpu_arena``), CUDA first when this build has it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    if num_threads:
        options.intra_op_num_threads = num_threads
    _share_cpu_arena(ort)
    options.add_session_config_entry("session.use_env_allocators", "1")
    return ort.InferenceSession(str(path), options, providers=onnx_providers())


# --------------------------------------------------------------------------- passes side by side

_pass_pools: dict[int, ThreadPoolExecutor] = {}
_pass_pools_lock = threading.Lock()


def _forget_pass_pools() -> None:
    """In a forked child (a Celery or gunicorn worker of a parent that ran passes): the parent's
    pool threads do not exist here, so a pool inherited would wait for them forever."""
    global _pass_pools_lock
    _pass_pools.clear()
    _pass_pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pass_pools)


def _pass_pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool for ``workers`` passes at once, made on first use (after gunicorn forks;
    a pool started per call cost ~3 ms a thread on a busy 2-core machine)."""
    with _pass_pools_lock:
        pool = _pass_pools.get(workers)
        if pool is None:
            pool = _pass_pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="forward-pass")
        return pool


def pass_rounds(count: int, passes: int = 1, in_flight: int | None = None) -> list[list[slice]]:
    """How a batch of ``count`` images is run: rounds of at most ``passes`` near-equal slices that
    run side by side, so no more than ``in_flight`` images (None: the whole batch) are in flight
    at once. 10 images, 2 passes, 6 in flight: 3 + 3, then 2 + 2; 1 in flight: one at a time."""
    if count <= 1:
        return [[slice(0, count)]]
    in_flight = min(count, in_flight or count)
    passes = max(1, min(passes, in_flight))
    size = max(1, in_flight // passes)
    parts = -(-count // size)
    parts = min(count, -(-parts // passes) * passes)
    base, extra = divmod(count, parts)
    slices, start = [], 0
    for i in range(parts):
        stop = start + base + (i < extra)
        slices.append(slice(start, stop))
        start = stop
    return [slices[i : i + passes] for i in range(0, parts, passes)]


def run_in_passes(session, output_names: Sequence[str] | None, feeds: dict, passes: int = 1, in_flight=None):
    """``session.run`` over the ``images`` feed in the ``pass_rounds``, each round's passes side by
    side on the process's pass pool, the outputs joined again along the batch.

    ONNX Runtime releases the GIL and a session may run from several threads at once, so with one
    intra-op thread a session and ``passes`` = the cores, a 10-record call uses every core the
    machine has instead of one (BENCHMARKS.md, "Passes side by side"); one image, or ``passes``
    1, runs in the caller's thread as before. The slices share the batch's shape (padded once,
    before), so each image's outputs do not depend on how the batch was cut."""
    images = feeds["images"]
    rounds = pass_rounds(len(images), passes, in_flight)
    if len(rounds) == 1 and len(rounds[0]) == 1:
        return session.run(output_names, feeds)

    def one(part: slice):
        return session.run(output_names, {**feeds, "images": images[part]})

    runs = []
    for parts in rounds:
        runs += list(_pass_pool(passes).map(one, parts)) if len(parts) > 1 else [one(parts[0])]
    return [np.concatenate(outputs) for outputs in zip(*runs, strict=True)]


class SideBySide:
    """An ONNX Runtime session whose ``run`` goes through ``run_in_passes`` with ``passes`` passes
    side by side where the session runs on the CPU (a GPU takes a batch whole: one pass there);
    everything else is the session's (``get_modelmeta``, ``get_inputs``, ``get_outputs``)."""

    def __init__(self, session, passes: int = 1):
        self.session = session
        on_cpu = session.get_providers()[0] == "CPUExecutionProvider"
        self.passes = max(1, passes) if on_cpu else 1

    def run(self, output_names, feeds: dict, in_flight: int | None = None):
        """``in_flight``: at most this many images run at once (``pass_rounds``)."""
        return run_in_passes(self.session, output_names, feeds, self.passes, in_flight)

    def __getattr__(self, name: str):
        return getattr(self.session, name)


class OnnxRunner:
    """A version's ``model.onnx`` in an ONNX Runtime session: uint8 (N, 3, S, S) images in,
    ``(scores, features)`` out as float32 arrays (the file's ``scores`` are the predictor's
    ``probs`` / values; ``features`` the penultimate features, not normalised).

    Sequential execution on ``num_threads`` intra-op threads (None: ONNX Runtime's default, one
    per core) a pass, and on a CPU a batch in ``passes`` passes side by side (``SideBySide``).
    Every runner of the process allocates from one shared CPU arena (``_share_cpu_arena``).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None, passes: int = 1):
        self.path = str(path)
        self.session = SideBySide(onnx_session(self.path, num_threads), passes)
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(
        self, images: np.ndarray, in_flight: int | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``in_flight``: at most this many images run at once (the shared arena grows to them)."""
        found = dict(zip(self.outputs, self.session.run(None, {"images": images}, in_flight), strict=True))
        return found["scores"], found.get("features")


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


def _frozen(module: torch.nn.Module, predictor: Servable) -> Callable:
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


def accelerate(predictor: Servable, mode: str, num_threads: int | None = None, passes: int = 1) -> Servable:
    """Swap the predictor's forward for the ``mode`` lever and warm it up.

    ``onnx``: the version's ``model.onnx`` in ONNX Runtime (``num_threads`` intra-op threads, a
    batch in ``passes`` passes side by side: ``run_in_passes``); the torch model is then dropped
    (``predictor.model`` is None).
    ``eager``: plain PyTorch. ``jit``: traced and frozen, float32. ``bf16``: traced and frozen
    with bfloat16 weights, only on a GPU or a CPU with AMX (else ``jit``). ``auto``: ``onnx``,
    except on a GPU when onnxruntime has no CUDA provider (then ``jit`` on the GPU).
    Warming up runs the first, slow passes (profiling, graph
    optimisation) at load time instead of in a request.
    """
    if mode == "auto":
        on_gpu = predictor.device.type != "cpu"
        mode = "jit" if on_gpu and "CUDAExecutionProvider" not in onnx_providers() else "onnx"
    if mode == "bf16" and predictor.device.type == "cpu" and not amx_available():
        logger.warning("inference mode bf16 needs AMX on CPU; using jit")
        mode = "jit"
    if mode == "onnx":
        try:
            predictor.onnx = OnnxRunner(predictor.onnx_path(), num_threads, passes)
            if "features" not in predictor.onnx.outputs:  # exported before descriptors were an output
                predictor.onnx = OnnxRunner(predictor.onnx_path(rewrite=True), num_threads, passes)
        except Exception:  # a net the exporter or the runtime cannot take: serve it with torch
            logger.exception("ONNX Runtime cannot serve this version; using jit")
            predictor.onnx, mode = None, "jit"
    if mode == "jit":
        predictor.forward_fn = _frozen(_FeaturesAndLogits(predictor.model), predictor)
    elif mode == "bf16":
        model = copy.deepcopy(predictor.model).to(torch.bfloat16)
        predictor.forward_fn = _frozen(_FeaturesAndLogits(model, torch.bfloat16), predictor)
    elif mode not in ("eager", "onnx"):
        raise ValueError(f"unknown inference mode {mode!r}")
    if predictor.onnx is not None:
        # ONNX Runtime holds the weights it serves; the torch copy would only double them.
        predictor.model = None
    size = predictor.input_size
    warm = torch.zeros((2, 3, size, size), dtype=torch.uint8)
    for _ in range(2):
        predictor.predict_tensor(warm)
    return predictor
