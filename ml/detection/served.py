"""A detection version served from its ``model.onnx`` alone: ONNX Runtime, Pillow and numpy.

The exported graph (ml/detection/export.py) and the decoding the download bundle ships
(ml/detection/postprocess.py) answer without torch, so a detector that has its file is served as
a ``ServedDetector`` (``served_alone``; ml/loading.py chooses) and the web process never imports
torch for it (BENCHMARKS.md, "A web process without torch"). A version without the file, a file
ONNX Runtime refuses, and the torch modes are loaded by ml/detection/detector.py's
``DetectionPredictor``; both answer through ``objects_in_frames``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from ml import artifacts
from ml.detection import postprocess
from ml.images import ImageInput, shrunk_array
from ml.runtime import SideBySide, onnx_session

logger = logging.getLogger(__name__)

TASK_TYPE = "detection"


def objects_in_frames(inputs: Sequence, predictions: list[dict], min_prob: float | None = None) -> list[dict]:
    """``{"objects": [{label, bound_box, prob}]}`` per image from ``predictions`` (``boxes``,
    ``scores``, ``labels`` in the frame of the model's input): boxes scaled back to each image's
    own (width, height) in ``inputs`` and rounded inside it, most probable first; with ``min_prob``
    only those at least that probable."""
    results = []
    for (image, (width, height)), det in zip(inputs, predictions, strict=True):
        sx, sy = width / image.shape[2], height / image.shape[1]
        objects = []
        for box, score, label in zip(det["boxes"], det["scores"], det["labels"], strict=True):
            if min_prob is not None and score < min_prob:
                continue
            x1, y1, x2, y2 = box
            bound = [
                max(0, min(width, round(x1 * sx))),
                max(0, min(height, round(y1 * sy))),
                max(0, min(width, round(x2 * sx))),
                max(0, min(height, round(y2 * sy))),
            ]
            objects.append({"label": label, "bound_box": bound, "prob": float(score)})
        objects.sort(key=lambda o: -o["prob"])
        results.append({"objects": objects})
    return results


class DetectorVersion:
    """What ``model.json`` says of a saved detector, and ``predict`` over the ``preprocess`` and
    ``predict_batch`` of a subclass (``ServedDetector``; ml/detection/detector.py's
    ``DetectionPredictor`` with torch). Boxes ``[xmin, ymin, xmax, ymax]`` in the pixel frame of
    the image as given (upright: EXIF orientation applied), with the label index and probability,
    best first."""

    def __init__(self, meta: dict):
        self.meta = meta
        self.task_type = TASK_TYPE
        self.labels: list[dict] = meta["labels"]
        self.input_size = int(meta["input_size"])
        # Scores to probabilities (ml/detection/calibrate.py); versions trained before have none.
        self.calibration: dict | None = meta.get("calibration")
        # The second look at the labels (ml/detection/second_look.py); versions without one: None.
        self.second_look: dict | None = meta.get("second_look")

    # No ``draft(image)`` for the classify service to call first: a drafted JPEG no longer knows
    # its own size, and the boxes must come back in that frame (preprocess drafts after reading it).

    def predict(self, images: Sequence[ImageInput]) -> list[dict]:
        return self.predict_batch([self.preprocess(image) for image in images]) if images else []


class ServedDetector(DetectorVersion):
    """A saved detector's ``model.onnx`` in ONNX Runtime, decoded in numpy (``postprocess.run``):
    ``preprocess`` one image, ``predict_batch`` many in one batch (in passes side by side on a
    CPU, ``SideBySide``)."""

    model = None  # no torch model: ONNX Runtime holds the weights it serves

    def __init__(self, meta: dict, session: SideBySide):
        super().__init__(meta)
        self.onnx = session
        self.onnx_spec: dict = postprocess.read_spec(session)

    @classmethod
    def open(cls, onnx_file: str | os.PathLike, meta: dict, num_threads: int | None = None, passes: int = 1):
        """The file in a session of the service's (ml/runtime.py), warmed up."""
        detector = cls(meta, SideBySide(onnx_session(onnx_file, num_threads), passes))
        size = detector.input_size
        detector.predict_batch([(np.zeros((3, size, size), dtype=np.uint8), (size, size))])
        return detector

    def preprocess(self, image: ImageInput) -> tuple[np.ndarray, tuple[int, int]]:
        """The image at the model's scale (longer side at most ``input_size``) and its own size."""
        return shrunk_array(image, self.input_size)

    def predict_batch(self, inputs: Sequence, descriptor: bool = False, min_prob: float | None = None):
        """One batch over ``preprocess`` outputs; ``objects_in_frames``. ``min_prob`` leaves out the
        objects under it (the detect call's ``keep_prob``): the same objects as without it, cut
        there, for less work (the NMS skips them: ml/detection/postprocess.py)."""
        found = postprocess.run(
            self.onnx, self.onnx_spec, [np.asarray(image) for image, _ in inputs], min_prob
        )
        predictions = [
            {"boxes": f["boxes"].tolist(), "scores": f["scores"].tolist(), "labels": f["labels"].tolist()}
            for f in found
        ]
        return objects_in_frames(inputs, predictions, min_prob)


def served_alone(directory, mode: str | None, num_threads: int | None = None, passes: int = 1):
    """The detector saved in ``directory`` as a ``ServedDetector`` (no torch) when it has its
    ``model.onnx`` and ``mode`` is ``auto`` or ``onnx``; None otherwise, and where ONNX Runtime
    refuses the file (then torch serves it: ml/loading.py)."""
    onnx_file = os.path.join(directory, artifacts.ONNX_FILE)
    if mode not in ("auto", "onnx") or not os.path.isfile(onnx_file):
        return None
    try:
        return ServedDetector.open(onnx_file, artifacts.load_meta(directory), num_threads, passes)
    except Exception:  # a file the runtime cannot take: serve the torch model instead
        logger.exception("ONNX Runtime cannot serve this detector; using torch")
        return None
