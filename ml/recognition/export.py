"""Export a saved version to ONNX, so it can be served elsewhere (onnxruntime, other runtimes).

The exported graph takes the same input the predictor builds: a uint8 batch ``(N, 3, S, S)`` of
images resized to the version's input size. Normalisation and the output activation (softmax,
sigmoid, or de-normalised regression value) are inside the graph, so its ``scores`` output equals
``Predictor.predict_tensor``'s ``probs`` / ``value`` and a caller needs nothing but the resize; its
``features`` output is the penultimate layer (the descriptor before L2 normalisation).

A version trained with this code already has its served ``model.onnx`` (FP32 or INT8,
ml/recognition/serving.py); this FP32 export is for versions trained before, and for training's
own use as the starting point of quantisation.
"""

from __future__ import annotations

import os
import pathlib

from ml.artifacts import ONNX_FILE
from ml.recognition.predictor import ONNX_OPSET, Predictor

OPSET = ONNX_OPSET


def export_onnx(directory: str | os.PathLike, out_path: str | os.PathLike | None = None) -> pathlib.Path:
    """Write the version saved in ``directory`` as FP32 ONNX (default ``directory/model.onnx``).

    Input ``images``: uint8 (batch, 3, S, S), batch dynamic. Outputs ``scores``: (batch, labels)
    probabilities, or (batch,) values for regression; ``features``: (batch, F).
    """
    predictor = Predictor.load(directory, device="cpu")
    return predictor.write_onnx(pathlib.Path(out_path or pathlib.Path(directory) / ONNX_FILE))
