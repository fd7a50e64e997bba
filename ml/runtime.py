"""ONNX Runtime as the service runs it, without torch: sessions, passes side by side, the runner.

Every served file (a recognition version's ``model.onnx``, FP32 or INT8, and a detector's) runs
in a session made by ``onnx_session``: sequential execution on a few intra-op threads and one CPU
arena shared by the process. On a CPU a batch runs in passes side by side (``run_in_passes``).
Nothing here imports torch, so a web process that serves ONNX files never loads it
(ml/recognition/served.py, ml/detection/served.py; docs/operations.md, "Memory bound per worker").
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# On a CPU, a forward pass over many images at once costs more per image once its activations
# outgrow the caches (bench/bench_forward_batches.py, 2 cores, tf_efficientnet_lite0, random
# weights): training's forward_outputs over 120 images took 24.4 ms an image in batches of 64 and
# 12.6 in batches of 6 at 224 px on 2 threads (38.5 and 19.1 on 1 thread), 72.3 and 21.1 in batches
# of 2 at 320 px, 5.7 and 2.9 in batches of 18 at 128 px; the traced, frozen net a version serves,
# at 224 px on 2 threads, 6.8 ms an image in batches of 6 and 10.0 in batches of 10. At most this
# many input pixels a pass: 6 images at 224 px, 18 at 128, 2 at 320.
CPU_BATCH_PIXELS = 6 * 224 * 224


def forward_batch_size(side: int, device, at_most: int) -> int:
    """Images per forward pass for ``side`` px inputs on ``device``: up to ``at_most``, and on a CPU
    no more than CPU_BATCH_PIXELS of input (a GPU takes the whole batch).
    ``device``: a ``torch.device`` or its type's name (``"cpu"``, ``"cuda"``)."""
    if getattr(device, "type", device) != "cpu":  # a torch.device or its name
        return max(1, at_most)
    return max(1, min(at_most, CPU_BATCH_PIXELS // max(side * side, 1)))


def cuda_present() -> bool:
    """Whether the NVIDIA driver sees a GPU, asked of the driver itself (``libcuda``), as torch's
    own check does: no driver library, or no device, is False."""
    for name in ("libcuda.so.1", "nvcuda.dll"):
        try:
            driver = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            found = driver.cuInit(0) == 0 and driver.cuDeviceGetCount(ctypes.byref(count)) == 0
            return found and count.value > 0
        except AttributeError:
            return False
    return False


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
        self.on_cpu = session.get_providers()[0] == "CPUExecutionProvider"
        self.passes = max(1, passes) if self.on_cpu else 1

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
