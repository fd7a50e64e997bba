"""torch's intra-op threads for one training, whatever a predictor in the same process set.

Both trainers (``ml.recognition.recipe.fit`` and ``ml.detection.detector.fit_detector``) run
inside ``torch_threads``.
"""

from __future__ import annotations

import contextlib
import os

import torch


def default_threads() -> int:
    """One torch thread per core this process may run on (torch's own default on this kind of
    machine, computed afresh: the process-wide count may have been changed since start)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity API on this platform
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(count: int | None):
    """torch's intra-op threads for one training: ``count``, or one per core when None; the
    previous count is restored after. A predictor loaded in the same process (eager jobs, the
    benchmarks, a web process) sets the process-wide count to its serving share (one thread on
    2 cores with two web workers), and a training must not inherit that: measured in
    bench_quality, every training after the first classify ran on one thread, its probe 50 %
    slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count or default_threads())
    try:
        yield
    finally:
        torch.set_num_threads(previous)
