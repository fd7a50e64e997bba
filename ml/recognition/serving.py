"""The served file of a version: ``model.onnx``, INT8 where it agrees with FP32, else FP32.

At the end of training (``recipe.fit``, once the version is saved) the FP32 net is exported to
ONNX and quantised to INT8 by ONNX Runtime's static quantisation (QDQ, per-channel INT8 weights,
UINT8 activations; ranges calibrated on images of the task's own training side). Both run on the
version's test side; INT8 is kept only when it agrees with FP32 (top-1 agreement at least
``int8_min_agreement`` and no probability moved more than ``int8_max_prob_diff``, both from the
training config), else FP32 is. The choice and the figures go into model.json (``serving``) and
the version's metrics. The file written is what the service runs (``Predictor.load(...,
mode="onnx")``) and what a download hands out: the same bytes, so they answer alike.

Regression versions stay FP32 (a value has no top-1 to agree on). No Django here.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import time

import numpy as np
import torch

from ml import artifacts
from ml.config import TrainConfig
from ml.inference import OnnxRunner
from ml.recognition.predictor import Predictor

# Images of the training side the activation ranges are calibrated on (evenly spread over it). Each
# costs a forward of the graph with every activation as an output: the photo recipe's version took
# 76 s for 32 on a loaded 2-core machine, most of the step (BENCHMARKS.md, "Serving through ONNX
# Runtime"), so no more than this.
CALIBRATION_IMAGES = 32
BATCH = 16


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


def spread(images: torch.Tensor, count: int) -> torch.Tensor:
    """At most ``count`` images evenly spread over ``images`` (the training side's label order)."""
    if len(images) <= count:
        return images
    return images[np.linspace(0, len(images) - 1, count).round().astype(int)]


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


def build_served_model(
    directory: str | os.PathLike, *, calibration: torch.Tensor, test: torch.Tensor, config: TrainConfig
) -> dict:
    """Write ``directory/model.onnx`` for the version saved there and return what was chosen:
    ``precision`` (``int8`` or ``fp32``), the ``agreement`` figures, the ``limits``, why FP32
    (``reason``) and the seconds it took. ``calibration`` (training side) and ``test`` (test side)
    are uint8 (N, 3, S, S) tensors at the version's input size; with no test image the agreement
    is measured on the calibration images (``measured_on`` says which)."""
    started = time.monotonic()
    directory = pathlib.Path(directory)
    predictor = Predictor.load(directory, device="cpu")
    record: dict = {
        "runtime": "onnxruntime",
        "precision": "fp32",
        "limits": {
            "top1_agreement": config.int8_min_agreement,
            "max_prob_diff": config.int8_max_prob_diff,
        },
    }
    with tempfile.TemporaryDirectory(prefix="vf-serving-", dir=directory) as work:
        fp32_path = pathlib.Path(work) / "fp32.onnx"
        int8_path = pathlib.Path(work) / "int8.onnx"
        predictor.write_onnx(fp32_path)
        chosen = fp32_path
        if predictor.task_type == "regression":
            record["reason"] = "regression versions are served in FP32"
        elif not config.int8:
            record["reason"] = "INT8 turned off in the training config"
        elif not len(calibration):
            record["reason"] = "no training image to calibrate on"
        else:
            calibration = spread(calibration, CALIBRATION_IMAGES)
            quantize_int8(fp32_path, int8_path, calibration)
            measured = test if len(test) else calibration
            fp32 = _outputs(OnnxRunner(fp32_path, config.num_threads), measured)
            int8 = _outputs(OnnxRunner(int8_path, config.num_threads), measured)
            figures = agreement(fp32, int8)
            record.update(
                agreement=figures,
                measured_on="test side" if len(test) else "training side (no test images)",
                calibration_images=len(calibration),
            )
            if agrees(figures, config):
                record["precision"] = "int8"
                chosen = int8_path
            else:
                record["reason"] = "INT8 disagrees with FP32 beyond the limits"
        os.replace(chosen, directory / artifacts.ONNX_FILE)
    record["seconds"] = round(time.monotonic() - started, 2)
    return record
