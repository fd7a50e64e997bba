"""A detection version's ONNX file, run with numpy: letterbox, the graph, then decode + NMS.

This file ships in a detection version's download bundle beside ``model.onnx`` and ``model.json``
and needs only numpy, Pillow and onnxruntime (no torch, nothing else of VisionForge); the service
(``ml.detection.detector.DetectionPredictor``) runs the same functions on the same file, so a
downloaded bundle answers as the service does. Use it alone::

    from postprocess import Detector
    detector = Detector("path/to/unzipped-bundle")
    detector.detect("photo.jpg")  # [{"label": 0, "name": "cat", "bound_box": [x1, y1, x2, y2], "prob": 0.93}]

or ``python postprocess.py path/to/unzipped-bundle photo.jpg``.

The graph (ml/detection/export.py) is torchvision's FCOS without its post-processing: input
``images``, a uint8 batch (N, 3, P, P) of RGB images letterboxed into P x P (the image resized so
its longer side is the version's input size S, placed at the top left, the rest grey 128; P is S
rounded up to a multiple of 32); normalisation is inside the graph. Outputs, one row per location
of the five FPN levels (level by level, each row by row):

- ``cls_logits`` (N, A, C): a logit per class; class 0 is unused (torchvision's background slot),
  class k + 1 is model.json's label k;
- ``bbox_regression`` (N, A, 4): distances from the location to the box's left, top, right and
  bottom edges, in units of the level's anchor size;
- ``bbox_ctrness`` (N, A, 1): the centre-ness logit.

The decoding is FCOS's (torchvision ``FCOS.postprocess_detections``): a location's anchor is
centred at (x * stride, y * stride) with the level's size; a class's score is
sqrt(sigmoid(logit) * sigmoid(centre-ness)); per level the scores above ``score_thresh`` are kept,
at most ``topk_candidates`` of them, best first; boxes are clipped to the resized image; then
non-maximum suppression per class at IoU ``nms_thresh``, and at most ``detections_per_img`` boxes
remain, best first. Those figures, the levels' grid sizes and strides, and the sizes S and P are
in the ONNX file's metadata (key ``visionforge.detection``, JSON).
"""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np

METADATA_KEY = "visionforge.detection"
PAD_VALUE = 128  # grey: normalised by the graph ((x / 255 - 0.5) / 0.5) to almost 0, as torch pads


def padded_size(input_size: int) -> int:
    """The graph's square input side: the input size rounded up to a multiple of 32."""
    return int(math.ceil(input_size / 32) * 32)


def resized_shape(height: int, width: int, input_size: int) -> tuple[int, int]:
    """(height, width) of an image once its longer side is ``input_size`` (torchvision's rounding:
    down)."""
    scale = input_size / max(height, width)
    return max(1, int(math.floor(height * scale))), max(1, int(math.floor(width * scale)))


def letterbox(image: np.ndarray, input_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """A uint8 (3, H, W) image at the graph's input: resized (bilinear) so its longer side is
    ``input_size`` when it is not already, at the top left of a grey P x P canvas. Returns the
    canvas (3, P, P) and the resized (height, width) the boxes are decoded in."""
    _, height, width = image.shape
    shape = resized_shape(height, width, input_size)
    if shape != (height, width):
        from PIL import Image

        picture = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))
        picture = picture.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
        image = np.asarray(picture, dtype=np.uint8).transpose(2, 0, 1)
    side = padded_size(input_size)
    canvas = np.full((3, side, side), PAD_VALUE, dtype=np.uint8)
    canvas[:, : shape[0], : shape[1]] = image
    return canvas, shape


def anchors(spec: dict) -> list[np.ndarray]:
    """Per level, the (locations, 4) anchor boxes [x1, y1, x2, y2] (torchvision's AnchorGenerator
    with one square anchor per location)."""
    out = []
    for (rows, cols), stride, size in zip(spec["levels"], spec["strides"], spec["anchor_sizes"], strict=True):
        half = round(size / 2)
        ys, xs = np.meshgrid(np.arange(rows) * stride, np.arange(cols) * stride, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel(), xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
        out.append(centres + np.array([-half, -half, half, half], dtype=np.float32))
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indexes kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-12)
        order = rest[iou <= threshold]
    return np.array(keep, dtype=np.int64)


def decode(
    cls_logits: np.ndarray, bbox_regression: np.ndarray, bbox_ctrness: np.ndarray, shape, spec: dict
) -> dict:
    """One image's graph outputs (A, C), (A, 4), (A, 1) to its detections in the resized frame
    ``shape`` (height, width): ``boxes`` (K, 4), ``scores`` (K,), ``labels`` (K,) as model.json's
    label indexes, best first."""
    per_level = [rows * cols for rows, cols in spec["levels"]]
    bounds = np.cumsum([0, *per_level])
    all_boxes, all_scores, all_labels = [], [], []
    for level, level_anchors in enumerate(anchors(spec)):
        part = slice(bounds[level], bounds[level + 1])
        # Class 0 is the unused background slot: never answered.
        scores = np.sqrt(_sigmoid(cls_logits[part, 1:]) * _sigmoid(bbox_ctrness[part])).ravel()
        candidates = np.flatnonzero(scores > spec["score_thresh"])
        best = candidates[np.argsort(-scores[candidates], kind="stable")[: spec["topk_candidates"]]]
        located, labels = np.divmod(best, cls_logits.shape[1] - 1)
        chosen = level_anchors[located]
        centre_x = 0.5 * (chosen[:, 0] + chosen[:, 2])
        centre_y = 0.5 * (chosen[:, 1] + chosen[:, 3])
        width = chosen[:, 2] - chosen[:, 0]
        height = chosen[:, 3] - chosen[:, 1]
        codes = bbox_regression[part][located] * np.stack([width, height, width, height], axis=1)
        boxes = np.stack(
            [centre_x - codes[:, 0], centre_y - codes[:, 1], centre_x + codes[:, 2], centre_y + codes[:, 3]],
            axis=1,
        )
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, shape[1])
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, shape[0])
        all_boxes.append(boxes)
        all_scores.append(scores[best])
        all_labels.append(labels)
    boxes = np.concatenate(all_boxes).astype(np.float32)
    scores = np.concatenate(all_scores).astype(np.float32)
    labels = np.concatenate(all_labels)
    kept = [
        index
        for label in np.unique(labels)
        for index in np.flatnonzero(labels == label)[
            _nms(boxes[labels == label], scores[labels == label], spec["nms_thresh"])
        ]
    ]
    kept = np.array(kept, dtype=np.int64)
    kept = kept[np.argsort(-scores[kept], kind="stable")][: spec["detections_per_img"]]
    return {"boxes": boxes[kept], "scores": scores[kept], "labels": labels[kept]}


def read_spec(session) -> dict:
    """The decoding figures stored in the ONNX file's metadata."""
    return json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])


def run(session, spec: dict, images: list[np.ndarray]) -> list[dict]:
    """Detections of uint8 (3, H, W) images (longer side at most the input size or not: they are
    letterboxed here), boxes ``[x1, y1, x2, y2]`` in each image's own (H, W) frame."""
    if not images:
        return []
    canvases, shapes = zip(*(letterbox(image, spec["input_size"]) for image in images), strict=True)
    cls_logits, bbox_regression, bbox_ctrness = session.run(
        ["cls_logits", "bbox_regression", "bbox_ctrness"], {"images": np.stack(canvases)}
    )
    results = []
    for i, (image, shape) in enumerate(zip(images, shapes, strict=True)):
        found = decode(cls_logits[i], bbox_regression[i], bbox_ctrness[i], shape, spec)
        scale = np.array([image.shape[2] / shape[1], image.shape[1] / shape[0]] * 2, dtype=np.float32)
        found["boxes"] = found["boxes"] * scale
        results.append(found)
    return results


class Detector:
    """A downloaded detection bundle (``model.onnx``, ``model.json``) in ONNX Runtime."""

    def __init__(self, folder: str | os.PathLike, num_threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(
            os.path.join(folder, "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.spec = read_spec(self.session)
        with open(os.path.join(folder, "model.json")) as fh:
            self.labels = json.load(fh)["labels"]

    def image_array(self, path) -> np.ndarray:
        """The image upright in RGB (transparent areas white), shrunk so its longer side is at most
        the input size: a uint8 (3, H, W) array, as the service decodes it."""
        from PIL import Image, ImageOps

        picture = Image.open(path)
        longest = self.spec["input_size"]
        if picture.format == "JPEG" and picture.mode in ("RGB", "L", "CMYK"):
            picture.draft("RGB", (longest, longest))
        try:
            picture = ImageOps.exif_transpose(picture)
        except (OSError, ValueError, SyntaxError, TypeError):
            pass
        if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
            rgba = picture.convert("RGBA")
            picture = Image.new("RGB", rgba.size, (255, 255, 255))
            picture.paste(rgba, mask=rgba.getchannel("A"))
        picture = picture.convert("RGB")
        scale = longest / max(picture.size)
        if scale < 1.0:
            size = (max(1, round(picture.size[0] * scale)), max(1, round(picture.size[1] * scale)))
            picture = picture.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(picture, dtype=np.uint8).transpose(2, 0, 1)

    def detect(self, path, original_size: tuple[int, int] | None = None) -> list[dict]:
        """Objects in the image at ``path``, boxes in its own pixels (``original_size`` (width,
        height): the frame to answer in, by default the image's upright size), best first."""
        from PIL import Image, ImageOps

        if original_size is None:
            original_size = ImageOps.exif_transpose(Image.open(path)).size
        array = self.image_array(path)
        (found,) = run(self.session, self.spec, [array])
        sx, sy = original_size[0] / array.shape[2], original_size[1] / array.shape[1]
        return [
            {
                "label": int(label),
                "name": self.labels[int(label)]["name"],
                "bound_box": [float(box[0] * sx), float(box[1] * sy), float(box[2] * sx), float(box[3] * sy)],
                "prob": float(score),
            }
            for box, score, label in zip(found["boxes"], found["scores"], found["labels"], strict=True)
        ]


if __name__ == "__main__":
    bundle, *paths = sys.argv[1:]
    detector = Detector(bundle)
    for image_path in paths:
        print(image_path, json.dumps(detector.detect(image_path)))  # noqa: T201 - a command-line tool
