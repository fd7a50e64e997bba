"""Load a saved version for serving: from its ``model.onnx`` alone where the file can do it (no
torch in the process: ml/recognition/served.py, ml/detection/served.py), else with torch.

The service's kinds (apps/recognition, apps/detection) load through here, so a web process that
serves versions with their files never imports torch and its libraries (BENCHMARKS.md, "A web
process without torch"). ``num_threads`` intra-op threads, ``passes`` passes of a batch side by
side (ml/runtime.py).
"""

from __future__ import annotations

import os

from ml.detection import served as served_detection
from ml.recognition import served as served_recognition


def load_recognition(
    directory: str | os.PathLike, *, mode: str, num_threads: int | None = None, passes: int = 1
):
    """A recognition version ready to classify: a ``ServedPredictor`` where its file serves it
    alone, else ``Predictor.load`` (which imports torch; a version without the file gets it
    written there, so its next load needs no torch). A file ONNX Runtime refused is not opened
    again: torch serves the version with ``jit``, as it would after failing to open it."""
    alone = served_recognition.served_alone(directory, mode, num_threads, passes)
    if alone is served_recognition.REFUSED:
        mode = "jit"
    elif alone is not None:
        return alone
    from ml.recognition.predictor import Predictor  # torch loads only here

    return Predictor.load(directory, mode=mode, num_threads=num_threads, passes=passes)


def load_detection(
    directory: str | os.PathLike, *, mode: str, num_threads: int | None = None, passes: int = 1
):
    """A detector ready to detect: a ``ServedDetector`` where its file serves it alone, else the
    torch model (``DetectionPredictor``)."""
    alone = served_detection.served_alone(directory, mode, num_threads, passes)
    if alone is not None:
        return alone
    from ml.detection.detector import DetectionPredictor  # torch loads only here

    return DetectionPredictor.load(directory, num_threads=num_threads, mode=None, passes=passes)
