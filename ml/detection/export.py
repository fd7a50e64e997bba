"""Export a trained detector to ONNX: the file a detection version is served from and downloaded as.

The graph is FCOS's backbone, FPN and heads, its input a batch as FCOS builds it (any height and
width that are multiples of 32: images resized to the input size, padded to the batch's largest);
the decoding and non-maximum suppression run in numpy afterwards (ml/detection/postprocess.py,
which documents the graph's inputs and outputs and ships in the download bundle). So the ONNX
Runtime path sees the same pixels as the torch model. In-graph NMS was not chosen: torchvision's
FCOS post-processing loops over levels with data-dependent shapes, which the exporter traces for
one input only. The figures the decoding needs (anchor sizes, thresholds, the input size) are
stored in the file's own metadata, so ``model.onnx`` + postprocess.py detect with nothing else.
No Django here.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
import time
import warnings
from collections import OrderedDict

import torch
from torch import nn

from ml import artifacts
from ml.detection.detector import ANCHOR_SIZES, DetectionPredictor
from ml.detection.postprocess import FEATURE_OUTPUTS, METADATA_KEY, levels, padded

ONNX_OPSET = 17
OUTPUTS = ("cls_logits", "bbox_regression", "bbox_ctrness")


class _Heads(nn.Module):
    """uint8 images in, normalised as FCOS's transform does, the heads' raw outputs out."""

    def __init__(self, model, levels: bool = False):
        super().__init__()
        self.backbone, self.head = model.backbone, model.head
        self.answers_levels = levels  # the backbone's levels too (a version with a second look)
        self.register_buffer("mean", torch.tensor(model.transform.image_mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(model.transform.image_std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor):
        x = (images.float() / 255.0 - self.mean) / self.std
        levels = self.backbone.body(x)
        pyramid = list(self.backbone.fpn(OrderedDict((str(i), f) for i, f in enumerate(levels))).values())
        out = self.head(pyramid)
        answers = (out["cls_logits"], out["bbox_regression"], out["bbox_ctrness"])
        return (*answers, *levels) if self.answers_levels else answers

    def levels(self, height: int, width: int) -> list[tuple[int, int]]:
        with torch.no_grad():
            features = self.backbone(torch.zeros(1, 3, height, width))
        return [tuple(f.shape[-2:]) for f in features.values()]


def write_onnx(predictor: DetectionPredictor, target: str | os.PathLike) -> dict:
    """Export a torch-served ``predictor``'s model to ``target``; return the decoding spec stored in
    the file's metadata."""
    import onnx

    model = predictor.model.cpu().eval()
    look = predictor.second_look
    module = _Heads(model, levels=bool(look)).eval()
    outputs = [*OUTPUTS, *(FEATURE_OUTPUTS if look else ())]
    side = padded(predictor.input_size)
    for shape in ((side, side), (side, padded(side * 3 // 4))):  # postprocess.levels is FCOS's
        if module.levels(*shape) != levels(*shape):
            raise ValueError(f"the backbone's levels {module.levels(*shape)} are not {levels(*shape)}")
    spec = {
        "input_size": predictor.input_size,
        "anchor_sizes": [sizes[0] for sizes in ANCHOR_SIZES],
        "score_thresh": float(model.score_thresh),
        "nms_thresh": float(model.nms_thresh),
        "topk_candidates": int(model.topk_candidates),
        "detections_per_img": int(model.detections_per_img),
    }
    if predictor.calibration:  # scores to the probabilities answered (ml/detection/calibrate.py)
        spec["calibration"] = {k: predictor.calibration[k] for k in ("slope", "intercept")}
    if look:  # the labels looked at again (postprocess.looked), from the graph's FEATURE_OUTPUTS
        spec["second_look"] = {k: look[k] for k in ("strides", "coef", "intercept", "weight", "own")}
    example = torch.zeros(1, 3, side, side, dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notice
        torch.onnx.export(
            module,
            (example,),
            str(target),
            input_names=["images"],
            output_names=outputs,
            dynamic_axes={
                "images": {0: "batch", 2: "height", 3: "width"},
                **{name: {0: "batch", 1: "locations"} for name in OUTPUTS},
                **{name: {0: "batch", 2: "rows", 3: "columns"} for name in outputs[len(OUTPUTS) :]},
            },
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    graph = onnx.load(str(target))
    entry = graph.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(spec)
    onnx.save(graph, str(target))
    return spec


def export_detector(directory: str | os.PathLike) -> dict:
    """Write ``directory/model.onnx`` for the detector saved there; return the version's serving
    record (runtime, precision, file, the decoding spec and the seconds it took)."""
    started = time.monotonic()
    directory = pathlib.Path(directory)
    predictor = DetectionPredictor.load(directory, device="cpu")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".export.", suffix=".onnx")
    os.close(fd)
    try:
        write_onnx(predictor, tmp)
        os.replace(tmp, directory / artifacts.ONNX_FILE)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {
        "runtime": "onnxruntime",
        "precision": "fp32",
        "file": artifacts.ONNX_FILE,
        "int8": "skipped",
        "reason": "detection versions are served in FP32",
        "input": "uint8 (N, 3, H, W), H and W multiples of 32 (postprocess.letterbox)",
        "export_seconds": round(time.monotonic() - started, 2),
    }
