"""A recognition version served from its ``model.onnx`` alone: ONNX Runtime, Pillow and numpy.

The served file (FP32, or INT8 where it agrees: ml/recognition/serving.py) holds the whole
forward: uint8 images in; normalisation, the net and the output activation inside; ``scores``
and ``features`` out. Serving it needs ``model.json`` (labels, input size, resize rule) and the
same preprocessing as training (ml/images.py), and no torch: ``served_alone`` builds a
``ServedPredictor`` from those (ml/loading.py chooses), so a web process that only serves never
imports torch, its ~200 MB of libraries (the CUDA build's, even on a machine with no GPU) and its
allocator (BENCHMARKS.md, "A web process without torch"). A version the file cannot serve alone
(none written yet, one exported before ``features`` was an output, a file ONNX Runtime refuses,
a GPU that onnxruntime cannot use) is loaded by ml/recognition/predictor.py with torch.
"""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ml import artifacts
from ml.images import ImageInput, draft, preprocess_array
from ml.runtime import OnnxRunner, cuda_present, forward_batch_size, onnx_providers

logger = logging.getLogger(__name__)

MSG_NO_FEATURES = "this model.onnx has no features output: export it again for descriptors"


def l2_normalized(features: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (at least 1e-12), in float32: ``torch.nn.functional.normalize``."""
    rows = np.asarray(features, dtype=np.float32)
    norms = np.sqrt(np.square(rows).sum(axis=1, keepdims=True, dtype=np.float32))
    return rows / np.maximum(norms, np.float32(1e-12))


def answers(
    scores: np.ndarray, features: np.ndarray | None, task_type: str, descriptor: bool = False
) -> list[dict]:
    """One row per image: ``probs`` (aligned to the labels) or ``value`` (regression, in target
    units), and with ``descriptor`` the L2-normalised penultimate features."""
    if descriptor and features is None:
        raise ValueError(MSG_NO_FEATURES)
    described = l2_normalized(features) if descriptor else None
    regression = task_type == "regression"
    rows = []
    for i in range(scores.shape[0]):
        row: dict = {"value": float(scores[i])} if regression else {"probs": scores[i].tolist()}
        if described is not None:
            row["descriptor"] = described[i].tolist()
        rows.append(row)
    return rows


class ServedVersion:
    """What ``model.json`` says of a version, and the preprocessing its training used.

    ``preprocess`` returns a uint8 (3, S, S) array; ``draft`` prepares an opened, not yet decoded
    image for it (a JPEG decodes at a reduced scale, and its ``size`` is then the pixels decoding
    will produce, for memory budgets)."""

    def __init__(self, meta: dict, directory: str | os.PathLike = ""):
        self.directory = pathlib.Path(directory)
        self.meta = meta
        self.task_type: str = meta["task_type"]
        self.labels: list[dict] = meta["labels"]
        self.input_size: int = int(meta["input_size"])
        self.mean: list[float] = meta["mean"]
        self.std: list[float] = meta["std"]
        self.interpolation: str = meta.get("interpolation", "bicubic")
        self.resize: str = meta.get("resize", "crop")  # ml.images.RESIZE_MODES
        self.thresholds: list[float] | None = meta.get("thresholds")
        self.target_mean: float | None = meta.get("target_mean")
        self.target_std: float | None = meta.get("target_std")
        # The version's model.onnx in ONNX Runtime; when set it runs the whole forward.
        self.onnx: OnnxRunner | None = None
        self.device = "cpu"  # where the forward runs: a torch.device, or the name of one

    def preprocess(self, image: ImageInput):
        """Decode + resize one image to the version's uint8 (3, S, S) input."""
        return preprocess_array(image, self.input_size, self.interpolation, self.resize)

    def draft(self, image: Image.Image) -> Image.Image:
        return draft(image, self.input_size)

    def onnx_answers(self, images: np.ndarray, descriptor: bool = False) -> list[dict]:
        """``answers`` for a uint8 (N, 3, S, S) batch run by ``onnx``. On a CPU at most
        ``forward_batch_size`` images are in flight at once: the shared arena (ml/runtime.py) then
        grows to one pass's activations, not the whole request's."""
        images = np.ascontiguousarray(images)
        in_flight = forward_batch_size(images.shape[-1], self.device, images.shape[0])
        scores, features = self.onnx(images, in_flight)
        return answers(scores, features, self.task_type, descriptor)


class ServedPredictor(ServedVersion):
    """A version served by its ``model.onnx`` in ONNX Runtime, with no torch model at all: the
    answers of ``Predictor`` in ``onnx`` mode (the same file, runtime and preprocessing)."""

    model = None  # no torch model: ONNX Runtime holds the weights it serves

    def __init__(self, meta: dict, directory: str | os.PathLike, runner: OnnxRunner):
        super().__init__(meta, directory)
        self.onnx = runner
        self.device = "cpu" if runner.session.on_cpu else "cuda"

    def predict(self, images: Sequence[ImageInput], descriptor: bool = False) -> list[dict]:
        """Preprocess ``images`` and run them as one batch."""
        return self.predict_batch([self.preprocess(image) for image in images], descriptor)

    def predict_batch(self, inputs: Sequence[np.ndarray], descriptor: bool = False) -> list[dict]:
        """The forward over ``preprocess`` outputs, stacked into one batch."""
        if not len(inputs):
            return []
        return self.onnx_answers(np.stack([np.asarray(image) for image in inputs]), descriptor)

    def warm_up(self) -> ServedPredictor:
        """Run the first, slow passes (profiling, graph optimisation) now instead of in a request."""
        size = self.input_size
        for _ in range(2):
            self.predict_batch([np.zeros((3, size, size), dtype=np.uint8)] * 2)
        return self


# ``served_alone``'s answer for a file ONNX Runtime refused (logged once there): torch serves the
# version with ``jit`` without opening the file again (ml/loading.py).
REFUSED = "refused"


def served_alone(
    directory: str | os.PathLike, mode: str, num_threads: int | None = None, passes: int = 1
) -> ServedPredictor | str | None:
    """The version in ``directory`` served by its ``model.onnx`` without torch, or None where the
    file cannot do it alone: ``mode`` is not ``auto`` / ``onnx``, there is no file yet, the file
    has no ``features`` output (exported before descriptors: torch writes it again), or ``auto``
    on a GPU that this onnxruntime build cannot use (then torch's ``jit`` runs on the GPU,
    ml/inference.py); ``REFUSED`` where ONNX Runtime refuses the file."""
    path = pathlib.Path(directory) / artifacts.ONNX_FILE
    if mode not in ("auto", "onnx") or not path.is_file():
        return None
    if mode == "auto" and "CUDAExecutionProvider" not in onnx_providers() and cuda_present():
        return None
    try:
        runner = OnnxRunner(path, num_threads, passes)
    except Exception:  # a file the runtime cannot take: the torch path decides what serves it
        logger.exception("ONNX Runtime cannot open %s; loading the version with torch", path)
        return REFUSED
    if "features" not in runner.outputs:
        return None
    return ServedPredictor(artifacts.load_meta(directory), directory, runner).warm_up()
