"""The served file of a version: ``model.onnx`` (FP32) at once, INT8 later where it agrees with FP32.

Training ends by exporting the FP32 net to ``model.onnx`` (``write_fp32``), which is served from
the moment the version is TRAINED. The INT8 attempt runs afterwards, in a job of its own
(apps/training: ``model_version_serve_int8``), so it never delays TRAINED: ``try_int8`` quantises
``model.onnx`` with ONNX Runtime's static quantisation (QDQ, per-channel INT8 weights, UINT8
activations; ranges calibrated on images of the task's own training side), runs both files on the
version's test side, and keeps INT8 only when it agrees with FP32 (top-1 agreement at least
``int8_min_agreement`` and no probability moved more than ``int8_max_prob_diff``, both from the
version's training config). A kept INT8 file is named by its digest (``model.int8-<sha>.onnx``),
so every process that caches a version by its served file's name picks up the switch, and the
file served is the file a download hands out: the same bytes, so they answer alike.

Regression versions stay FP32 (a value has no top-1 to agree on). No Django here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import tempfile
import time
from collections.abc import Sequence

import numpy as np
import torch

from ml import artifacts
from ml.config import TrainConfig
from ml.images import ImageInput
from ml.recognition.predictor import Predictor
from ml.runtime import OnnxRunner

logger = logging.getLogger(__name__)

# Images of the training side the activation ranges are calibrated on (evenly spread over it). Each
# costs a forward of the graph with every activation as an output: the photo recipe's version took
# 76 s for 32 on a loaded 2-core machine, most of the step (BENCHMARKS.md, "Serving through ONNX
# Runtime"), so no more than this.
CALIBRATION_IMAGES = 32
BATCH = 16

# The states of the INT8 attempt, in the version's serving record (``int8``).
INT8_PENDING = "pending"  # queued after TRAINED: FP32 is served meanwhile
INT8_RUNNING = "running"
INT8_ACCEPTED = "accepted"  # the INT8 file is served
INT8_REFUSED = "refused"  # it disagreed with FP32 beyond the limits: FP32 stays
INT8_SKIPPED = "skipped"  # not tried (regression, turned off, nothing to calibrate on): FP32
INT8_FAILED = "failed"  # the attempt raised: FP32 stays
INT8_FINAL = (INT8_ACCEPTED, INT8_REFUSED, INT8_SKIPPED, INT8_FAILED)

MSG_DISAGREES = "INT8 disagrees with FP32 beyond the limits"


class _Calibration:
    """onnxruntime.quantization's CalibrationDataReader over a uint8 (N, 3, S, S) tensor."""

    def __init__(self, images: torch.Tensor):
        self.batches = [images[i : i + BATCH].numpy() for i in range(0, len(images), BATCH)]
        self.next = 0

    def get_next(self) -> dict | None:
        if self.next >= len(self.batches):
            return None
        self.next += 1
        return {"images": np.ascontiguousarray(self.batches[self.next - 1])}

    def rewind(self) -> None:
        """Start again from the first batch (calibration methods that read the data twice)."""
        self.next = 0


def spread(images: Sequence, count: int) -> Sequence:
    """At most ``count`` of ``images`` evenly spread over them (the training side's order)."""
    if len(images) <= count:
        return images
    picks = np.linspace(0, len(images) - 1, count).round().astype(int)
    if isinstance(images, torch.Tensor):
        return images[picks]
    return [images[i] for i in picks]


def quantize_int8(
    fp32_path: str | os.PathLike, out_path: str | os.PathLike, calibration: torch.Tensor
) -> None:
    """Static INT8 quantisation of ``fp32_path`` into ``out_path``, ranges from ``calibration``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="vf-quant-") as work:
        prepared = pathlib.Path(work) / "prepared.onnx"
        # Shape inference and graph optimisation (folding, fusions) before inserting Q/DQ pairs.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out_path),
            _Calibration(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # Convolutions carry nearly all the cost; the head and the output activation stay FP32.
            op_types_to_quantize=["Conv"],
            calibrate_method=CalibrationMethod.MinMax,
        )


def _outputs(runner: OnnxRunner, images: torch.Tensor) -> np.ndarray:
    return np.concatenate([runner(images[i : i + BATCH].numpy())[0] for i in range(0, len(images), BATCH)])


def agreement(fp32: np.ndarray, int8: np.ndarray) -> dict:
    """How INT8's scores compare with FP32's on the same images: the share with the same top-1
    label and the largest probability moved."""
    if len(fp32) == 0:
        return {"images": 0, "top1_agreement": None, "max_prob_diff": None}
    return {
        "images": len(fp32),
        "top1_agreement": round(float(np.mean(fp32.argmax(axis=1) == int8.argmax(axis=1))), 6),
        "max_prob_diff": round(float(np.abs(fp32 - int8).max()), 6),
    }


def agrees(figures: dict, config: TrainConfig) -> bool:
    """INT8 is served only when it agrees with FP32 within the config's limits."""
    if not figures["images"]:
        return False
    return (
        figures["top1_agreement"] >= config.int8_min_agreement
        and figures["max_prob_diff"] <= config.int8_max_prob_diff
    )


def int8_file_name(path: str | os.PathLike) -> str:
    """The name an accepted INT8 file is stored and served under: its content's digest in it, so a
    process holding another file of the version never takes it for this one."""
    digest = hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
    return f"model.int8-{digest[:16]}.onnx"


def write_fp32(directory: str | os.PathLike, config: TrainConfig) -> dict:
    """Write ``directory/model.onnx``, the FP32 export served from TRAINED on, and return the
    version's serving record: ``runtime``, ``precision`` (fp32), ``file`` and ``int8``, the state of
    the INT8 attempt (``pending`` when a job is to try it, else ``skipped`` with the ``reason``)."""
    started = time.monotonic()
    directory = pathlib.Path(directory)
    predictor = Predictor.load(directory, device="cpu")
    predictor.onnx_path(rewrite=True)
    record: dict = {
        "runtime": "onnxruntime",
        "precision": "fp32",
        "file": artifacts.ONNX_FILE,
        "int8": INT8_PENDING,
        "limits": {"top1_agreement": config.int8_min_agreement, "max_prob_diff": config.int8_max_prob_diff},
    }
    if predictor.task_type == "regression":
        record.update(int8=INT8_SKIPPED, reason="regression versions are served in FP32")
    elif not config.int8:
        record.update(int8=INT8_SKIPPED, reason="INT8 turned off in the training config")
    record["export_seconds"] = round(time.monotonic() - started, 2)
    return record


def _decoded(predictor: Predictor, images: Sequence[ImageInput]) -> torch.Tensor:
    """The readable ``images`` as the predictor gets them, uint8 (N, 3, S, S); others skipped."""
    tensors = []
    for image in images:
        try:
            tensors.append(predictor.preprocess(image))
        except Exception as exc:  # noqa: BLE001 - an image deleted or broken since the training
            logger.warning("INT8 calibration: skipping an unreadable image: %s", exc)
    size = predictor.input_size
    return torch.stack(tensors) if tensors else torch.zeros((0, 3, size, size), dtype=torch.uint8)


def try_int8(
    directory: str | os.PathLike,
    *,
    training_images: Sequence[ImageInput],
    test_images: Sequence[ImageInput],
    num_threads: int | None = None,
) -> dict:
    """Try INT8 for the version saved in ``directory`` (its ``model.onnx`` FP32 export is made when
    missing). Calibrates on at most CALIBRATION_IMAGES of ``training_images`` (spread over them),
    measures agreement on ``test_images`` (the training images when there are none: ``measured_on``
    says which), limits from the version's own training config.

    Returns the changes to the serving record: on agreement ``precision`` int8, ``int8`` accepted
    and ``file``, the INT8 file written into ``directory`` under its digest name; else ``int8``
    refused (or skipped) and the ``reason``. With the ``agreement`` figures and the seconds taken.
    """
    started = time.monotonic()
    directory = pathlib.Path(directory)
    meta = artifacts.load_meta(directory)
    config = TrainConfig.from_dict(meta.get("config") or {})
    predictor = Predictor.load(directory, device="cpu")
    limits = {"top1_agreement": config.int8_min_agreement, "max_prob_diff": config.int8_max_prob_diff}
    if predictor.task_type == "regression":
        return {"int8": INT8_SKIPPED, "reason": "regression versions are served in FP32", "limits": limits}
    calibration = _decoded(predictor, spread(list(training_images), CALIBRATION_IMAGES))
    if not len(calibration):
        return {"int8": INT8_SKIPPED, "reason": "no training image to calibrate on", "limits": limits}
    test = _decoded(predictor, test_images)
    fp32_path = predictor.onnx_path()
    with tempfile.TemporaryDirectory(prefix="vf-serving-", dir=directory) as work:
        int8_path = pathlib.Path(work) / "int8.onnx"
        quantize_int8(fp32_path, int8_path, calibration)
        measured = test if len(test) else calibration
        fp32 = _outputs(OnnxRunner(fp32_path, num_threads), measured)
        int8 = _outputs(OnnxRunner(int8_path, num_threads), measured)
        figures = agreement(fp32, int8)
        record: dict = {
            "limits": limits,
            "agreement": figures,
            "measured_on": "test side" if len(test) else "training side (no test images)",
            "calibration_images": len(calibration),
        }
        if agrees(figures, config):
            name = int8_file_name(int8_path)
            os.replace(int8_path, directory / name)
            record.update(precision="int8", int8=INT8_ACCEPTED, file=name, reason=None)
        else:
            record.update(int8=INT8_REFUSED, reason=MSG_DISAGREES)
    record["int8_seconds"] = round(time.monotonic() - started, 2)
    return record
