"""Export a saved version to ONNX, so it can be served elsewhere (onnxruntime, other runtimes).

The exported graph takes the same input the predictor builds: a uint8 batch ``(N, 3, S, S)`` of
images resized to the version's input size. Normalisation and the output activation (softmax,
sigmoid, or de-normalised regression value) are inside the graph, so its ``scores`` output equals
``Predictor.predict_tensor``'s ``probs`` / ``value`` and a caller needs nothing but the resize.
"""

from __future__ import annotations

import os
import pathlib
import warnings

import torch
from torch import nn

from ml.artifacts import ONNX_FILE
from ml.data import normalize
from ml.models import features_and_logits, postprocess
from ml.recognition.predictor import Predictor

OPSET = 17


class _Exportable(nn.Module):
    def __init__(self, predictor: Predictor):
        super().__init__()
        self.model = predictor.model
        self.mean, self.std = predictor.mean, predictor.std
        self.task_type = predictor.task_type
        self.target_mean, self.target_std = predictor.target_mean, predictor.target_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = normalize(images, self.mean, self.std)
        _, logits = features_and_logits(self.model, x)
        return postprocess(logits, self.task_type, self.target_mean, self.target_std)


def export_onnx(directory: str | os.PathLike, out_path: str | os.PathLike | None = None) -> pathlib.Path:
    """Write the version saved in ``directory`` as ONNX (default ``directory/model.onnx``).

    Input ``images``: uint8 (batch, 3, S, S), batch dynamic. Output ``scores``: (batch, labels)
    probabilities, or (batch,) values for regression.
    """
    predictor = Predictor.load(directory, device="cpu")
    module = _Exportable(predictor).eval()
    target = pathlib.Path(out_path or pathlib.Path(directory) / ONNX_FILE)
    size = predictor.input_size
    example = torch.zeros(1, 3, size, size, dtype=torch.uint8)
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the dynamo one, which needs
        # extra packages and is much slower for these CNNs; its output is the same ONNX.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(target),
            input_names=["images"],
            output_names=["scores"],
            dynamic_axes={"images": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return target
