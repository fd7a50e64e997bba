"""One batch's ONNX Runtime passes side by side (ml/inference.py): every image once and in order,
no more images in flight than asked, the passes really in flight at the same time on a real
session, and the outputs those of one run of the whole batch."""

from __future__ import annotations

import multiprocessing
import os
import threading

import numpy as np
import pytest
import torch

from ml.runtime import SideBySide, onnx_session, pass_rounds, run_in_passes

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize(
    ("count", "passes", "in_flight", "sizes"),
    [
        (10, 2, 6, [[3, 3], [2, 2]]),  # the classify service's 10 records at 224 px on 2 cores
        (10, 1, 6, [[5], [5]]),
        (10, 2, None, [[5, 5]]),  # detect's 10 records: the whole batch in flight
        (3, 2, None, [[1, 1], [1]]),
        (4, 2, 1, [[1]] * 4),  # large images, one at a time: no second pass in flight
        (1, 2, None, [[1]]),
        (0, 2, None, [[0]]),
    ],
)
def test_a_batch_is_cut_into_rounds_of_near_equal_passes(count, passes, in_flight, sizes):
    rounds = pass_rounds(count, passes, in_flight)
    assert [[s.stop - s.start for s in parts] for parts in rounds] == sizes


def test_every_image_runs_once_in_order_and_no_more_than_asked_are_in_flight():
    for count in range(1, 25):
        for passes in (1, 2, 3, 4):
            for in_flight in (None, 1, 2, 5, 6, 8):
                rounds = pass_rounds(count, passes, in_flight)
                slices = [part for parts in rounds for part in parts]
                assert slices[0].start == 0 and slices[-1].stop == count
                assert all(a.stop == b.start for a, b in zip(slices, slices[1:], strict=False))
                sizes = [s.stop - s.start for s in slices]
                assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
                for parts in rounds:
                    assert len(parts) <= passes
                    assert sum(s.stop - s.start for s in parts) <= (in_flight or count), (
                        count,
                        passes,
                        in_flight,
                    )


class _Net(torch.nn.Module):
    def forward(self, images):
        x = images.float() / 255.0
        x = torch.nn.functional.conv2d(x, torch.linspace(-1, 1, 16 * 3 * 9).view(16, 3, 3, 3), padding=1)
        return x.relu().mean(dim=(2, 3)), x.amax(dim=(2, 3))


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = tmp_path_factory.mktemp("passes") / "net.onnx"
    torch.onnx.export(
        _Net(),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8),),
        str(path),
        input_names=["images"],
        output_names=["scores", "features"],
        dynamic_axes={"images": {0: "batch"}, "scores": {0: "batch"}, "features": {0: "batch"}},
        dynamo=False,
    )
    return onnx_session(path, num_threads=1)


class _Together:
    """The real session, each ``run`` first waiting at a barrier of two: a second pass that does not
    start while the first is in flight leaves the first waiting until the barrier breaks."""

    def __init__(self, session):
        self.session, self.barrier, self.threads = session, threading.Barrier(2, timeout=20), set()

    def run(self, names, feeds):
        self.threads.add(threading.get_ident())
        self.barrier.wait()
        return self.session.run(names, feeds)


def test_passes_run_side_by_side_and_answer_as_one_run_of_the_batch(session):
    images = np.random.default_rng(0).integers(0, 256, (10, 3, 32, 32), dtype=np.uint8)
    whole = session.run(None, {"images": images})
    together = _Together(session)
    split = run_in_passes(together, None, {"images": images}, passes=2, in_flight=6)  # 3 + 3, 2 + 2
    assert len(together.threads) == 2 and threading.get_ident() not in together.threads
    for mine, theirs in zip(split, whole, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-6)
    wrapped = SideBySide(session, passes=2)
    assert wrapped.get_inputs()[0].name == "images"  # the session's own, through the wrapper
    for mine, theirs in zip(wrapped.run(None, {"images": images}), whole, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-6)


def test_one_pass_at_a_time_runs_in_the_callers_thread(session):
    images = np.zeros((4, 3, 32, 32), dtype=np.uint8)
    seen = []

    class _Where:
        def run(self, names, feeds):
            seen.append((threading.get_ident(), len(feeds["images"])))
            return session.run(names, feeds)

    run_in_passes(_Where(), None, {"images": images}, passes=1, in_flight=2)
    assert seen == [(threading.get_ident(), 2), (threading.get_ident(), 2)]


def _passes_in_child(session, images, queue):
    split = run_in_passes(session, None, {"images": images}, passes=2)
    queue.put([np.asarray(output).tolist() for output in split])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_runs_passes_on_a_pool_of_its_own(session):
    """A worker forked from a process that already ran passes (its pool's threads stay behind in
    the parent) still runs them, instead of waiting for threads it does not have."""
    images = np.random.default_rng(1).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    whole = session.run(None, {"images": images})
    run_in_passes(session, None, {"images": images}, passes=2)  # the parent's pool exists now
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_passes_in_child, args=(session, images, queue))
    child.start()
    try:
        outputs = queue.get(timeout=60)
        child.join(timeout=60)
    finally:
        if child.is_alive():  # a child waiting on an inherited pool: not left behind
            child.kill()
    assert child.exitcode == 0
    for mine, theirs in zip(outputs, whole, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-6)
