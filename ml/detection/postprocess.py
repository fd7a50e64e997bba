"""A detection version's ONNX file, run with numpy: letterbox, the graph, then decode + NMS.

This file ships in a detection version's download bundle beside ``model.onnx`` and ``model.json``
and needs only numpy, Pillow and onnxruntime (no torch, nothing else of VisionForge); the service
(``ml.detection.detector.DetectionPredictor``) runs the same functions on the same file, so a
downloaded bundle answers as the service does. Use it alone::

    from postprocess import Detector
    detector = Detector("path/to/unzipped-bundle")
    detector.detect("photo.jpg")  # [{"label": 0, "name": "cat", "bound_box": [x1, y1, x2, y2], "prob": 0.93}]
    detector.detect("photo.jpg", keep_prob=0.3)  # only those at least that probable, as detect/ answers

or ``python postprocess.py path/to/unzipped-bundle photo.jpg``.

The graph (ml/detection/export.py) is torchvision's FCOS without its post-processing: input
``images``, a uint8 batch (N, 3, H, W) of RGB images batched as FCOS does (each resized so its
longer side is the version's input size S, placed at the top left of a grey (128) canvas whose
sides are the batch's largest rounded up to a multiple of 32: ``letterbox``); normalisation is
inside the graph. Outputs, one row per location of the five FPN levels (level by level, each row
by row):

- ``cls_logits`` (N, A, C): a logit per class; class 0 is unused (torchvision's background slot),
  class k + 1 is model.json's label k;
- ``bbox_regression`` (N, A, 4): distances from the location to the box's left, top, right and
  bottom edges, in units of the level's anchor size;
- ``bbox_ctrness`` (N, A, 1): the centre-ness logit;
- with a second look (``second_look`` in the metadata): ``features_8``, ``features_16`` and
  ``features_32`` (N, C, H / s, W / s), the backbone's levels at strides 8, 16 and 32.

The decoding is FCOS's (torchvision ``FCOS.postprocess_detections``): a location's anchor is
centred at (x * stride, y * stride) with the level's size (``anchors``); a class's score is
sqrt(sigmoid(logit) * sigmoid(centre-ness)); per level the scores above ``score_thresh`` are kept,
at most ``topk_candidates`` of them, best first; boxes are clipped to the resized image; then
non-maximum suppression per class at IoU ``nms_thresh``, and at most ``detections_per_img`` boxes
remain, best first. Those figures, the anchor sizes and S are in the ONNX file's metadata (key
``visionforge.detection``, JSON).

The second look at the labels (``looked``; ml/detection/second_look.py fits it): each box kept
by that NMS gets a probability q per label from a linear softmax (``coef``, ``intercept``) over its
levels' features averaged inside it (``pooled``), answers every label k with its score times
(1 - own) * q_k ** weight + own * [k is its own label], and the NMS per label runs again.

The probability answered: a version trained since calibration (``calibration`` in the metadata:
``slope`` a, ``intercept`` b) answers sigmoid(a * logit(score) + b), fitted on its validation
slice so that it is the chance that the box is right (``ml.detection.calibrate``); a, b > 0 keeps
the order, so the NMS and the boxes are the same. Without it the score itself is answered.

``min_score`` (the caller's cut-off, Ximilar's ``keep_prob``, a probability as answered) leaves the
locations under it out
before the NMS. That changes no answer at or above it: the NMS takes boxes best first and a box's
fate depends only on better ones, so the boxes kept at or above the cut-off are the same, in the
same order; the top-k per level and the ``detections_per_img`` limit keep the best, which are the
same ones. It saves the NMS's work on boxes nobody is shown: about 100 kept under 0.3 an image, 6 ms
of 6.5 (BENCHMARKS.md, "Detection through ONNX Runtime").
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from collections.abc import Sequence

import numpy as np

METADATA_KEY = "visionforge.detection"
# The backbone's levels (strides 8, 16, 32) the graph also answers when the version has a second
# look at the labels (``looked``).
FEATURE_OUTPUTS = ("features_8", "features_16", "features_32")
# Grey: the graph normalises it ((x / 255 - 0.5) / 0.5) to 0.004, where FCOS pads its normalised
# batch with 0; the zoom-out augmentation pads with this grey too.
PAD_VALUE = 128


def padded(side: int) -> int:
    """A side rounded up to a multiple of 32 (the backbone's largest stride), as FCOS pads."""
    return int(math.ceil(side / 32) * 32)


def resized_shape(height: int, width: int, input_size: int) -> tuple[int, int]:
    """(height, width) of an image once its longer side is ``input_size`` (torchvision's rounding:
    down)."""
    scale = input_size / max(height, width)
    return max(1, int(math.floor(height * scale))), max(1, int(math.floor(width * scale)))


def _resized(image: np.ndarray, input_size: int) -> np.ndarray:
    """A uint8 (3, H, W) image resized (bilinear) so its longer side is ``input_size``, when it is
    not already."""
    _, height, width = image.shape
    shape = resized_shape(height, width, input_size)
    if shape == (height, width):
        return image
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))
    picture = picture.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(picture, dtype=np.uint8).transpose(2, 0, 1)


def letterbox(images: list[np.ndarray], input_size: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """uint8 (3, H, W) images as one batch for the graph, as FCOS batches them: each resized so its
    longer side is ``input_size``, at the top left of a grey canvas whose sides are the batch's
    largest, rounded up to a multiple of 32. Returns the batch (N, 3, Hp, Wp) and each image's
    resized (height, width), the frame its boxes are decoded in."""
    resized = [_resized(image, input_size) for image in images]
    shapes = [(image.shape[1], image.shape[2]) for image in resized]
    height, width = padded(max(h for h, _ in shapes)), padded(max(w for _, w in shapes))
    batch = np.full((len(images), 3, height, width), PAD_VALUE, dtype=np.uint8)
    for i, image in enumerate(resized):
        batch[i, :, : image.shape[1], : image.shape[2]] = image
    return batch, shapes


def levels(height: int, width: int) -> list[tuple[int, int]]:
    """The five FPN levels' grid sizes for a padded (height, width): strides 8, 16, 32 of the
    backbone, then P6 and P7 by stride-2 convolutions (each rounds up)."""
    grids = [(height // stride, width // stride) for stride in (8, 16, 32)]
    for _ in range(2):
        rows, cols = grids[-1]
        grids.append(((rows + 1) // 2, (cols + 1) // 2))
    return grids


def anchors(height: int, width: int, spec: dict) -> tuple[np.ndarray, ...]:
    """Per level, the (locations, 4) anchor boxes [x1, y1, x2, y2] of a padded (height, width) batch
    (torchvision's AnchorGenerator with one square anchor per location: its stride is the padded
    side over the level's grid, rounded down, per axis). Built once per batch shape and kept,
    read-only: a served detector sees the same few shapes on every call."""
    return _anchors(height, width, tuple(spec["anchor_sizes"]))


@functools.lru_cache(maxsize=64)
def _anchors(height: int, width: int, sizes: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    out = []
    for (rows, cols), size in zip(levels(height, width), sizes, strict=True):
        half = round(size / 2)
        ys = np.arange(rows) * (height // rows)
        xs = np.arange(cols) * (width // cols)
        ys, xs = np.meshgrid(ys, xs, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel(), xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
        level = centres + np.array([-half, -half, half, half], dtype=np.float32)
        level.setflags(write=False)
        out.append(level)
    return tuple(out)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1.0 - 1e-7)
    return np.log(p) - np.log1p(-p)


def calibrated(scores: np.ndarray, calibration: dict | None) -> np.ndarray:
    """The probabilities answered for raw scores: sigmoid(slope * logit(score) + intercept), or the
    scores themselves without a calibration."""
    if not calibration:
        return scores
    values = calibration["slope"] * logit(np.asarray(scores, dtype=np.float64)) + calibration["intercept"]
    return _sigmoid(values).astype(np.float32)


def uncalibrated(probabilities: np.ndarray, calibration: dict | None) -> np.ndarray:
    """The raw scores probabilities answered come from (``calibrated``'s inverse), in float64."""
    values = np.asarray(probabilities, dtype=np.float64)
    if not calibration:
        return values
    return _sigmoid((logit(values) - calibration["intercept"]) / calibration["slope"])


def raw_score(probability: float, calibration: dict | None) -> float:
    """The raw score of the cut-off ``probability`` (``uncalibrated``), a hair lower so that float
    rounding never leaves out a box at the cut-off (the caller cuts the answered probabilities
    again)."""
    if not calibration:
        return probability
    if probability <= 0.0:
        return 0.0
    return float(uncalibrated(np.float64(probability), calibration)) * (1.0 - 1e-6)


def _nms(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, threshold: float, limit: int
) -> np.ndarray:
    """Indexes kept by greedy non-maximum suppression per label, best score first, at most
    ``limit`` (torchvision's ``batched_nms`` then ``[:limit]``: boxes of different labels are moved
    apart so they never overlap, and a box's fate depends only on better ones, so stopping at
    ``limit`` kept changes nothing before it)."""
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    shifted = boxes + (labels.astype(np.float32) * (boxes.max() + 1))[:, None]
    areas = (shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1])
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size and len(keep) < limit:
        best, rest = order[0], order[1:]
        keep.append(best)
        x1 = np.maximum(shifted[best, 0], shifted[rest, 0])
        y1 = np.maximum(shifted[best, 1], shifted[rest, 1])
        x2 = np.minimum(shifted[best, 2], shifted[rest, 2])
        y2 = np.minimum(shifted[best, 3], shifted[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-12)
        order = rest[iou <= threshold]
    return np.array(keep, dtype=np.int64)


def pooled(features: Sequence[np.ndarray], boxes: np.ndarray, strides: Sequence[int]) -> np.ndarray:
    """(K, sum of channels): per level (C, H, W) of stride s, the mean of a 4 x 4 grid of bilinear
    samples inside each box [x1, y1, x2, y2] (input pixels), levels concatenated. The same figure as
    torchvision's ``roi_align(output_size=2, sampling_ratio=2, aligned=True)`` averaged over its
    cells: samples at (k + 0.5) / 4 of the box, pixel centres at half-pixels, a sample outside the
    map by more than a pixel counting 0. The grid's weights are separable: each box gathers the
    8 x 8 cells its samples touch and sums them with a row and a column weight (in a fixed order:
    a box's figure does not depend on the other boxes)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = []
    for level, stride in zip(features, strides, strict=True):
        _, height, width = level.shape
        rows, row_weights = _samples(boxes[:, 1] / stride, boxes[:, 3] / stride, height)
        cols, col_weights = _samples(boxes[:, 0] / stride, boxes[:, 2] / stride, width)
        # (K, 8, 8, C): each cell's channels side by side (a gather along C strides the map)
        cells = np.ascontiguousarray(level.transpose(1, 2, 0))[rows[:, :, None], cols[:, None, :]]
        out.append(np.einsum("kabc,ka,kb->kc", cells, row_weights, col_weights))
    return np.concatenate(out, axis=1).astype(np.float32) if out else np.zeros((len(boxes), 0), np.float32)


def _samples(low: np.ndarray, high: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis of a map ``size`` cells long, for boxes from ``low`` to ``high`` (in cells):
    the cells its 4 sample points read (K, 8: each point's lower, then upper cell) and their
    weights (torchvision's ``roi_align`` bilinear rule, aligned; a quarter of each point's
    bilinear weight, 0 for a point off the map)."""
    at = (low - 0.5)[:, None] + ((np.arange(4) + 0.5) / 4)[None, :] * (high - low)[:, None]
    valid = (at >= -1.0) & (at <= size)
    at = np.clip(at, 0.0, None)
    lower = np.minimum(np.floor(at).astype(np.int64), size - 1)
    at = np.where(lower >= size - 1, lower, at)
    upper = np.minimum(lower + 1, size - 1)
    upper_weight = (at - lower) * valid / 4
    lower_weight = (1.0 - (at - lower)) * valid / 4
    cells = np.concatenate([lower, upper], axis=1)
    weights = np.concatenate([lower_weight, upper_weight], axis=1).astype(np.float32)
    return cells, weights


def looked(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    features: Sequence[np.ndarray],
    spec: dict,
    floor: float | None = None,
    pooled_features: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The second look at the labels (``second_look`` in the spec; ml/detection/second_look.py fits
    it): the boxes FCOS kept (raw scores, after its NMS) each get every label k, scored
    score * ((1 - own) * q_k ** weight + own * [k is FCOS's label]), where q is a linear softmax
    over the box's pooled backbone features (``pooled``; ``features`` the image's levels, boxes in
    that input frame; or ``pooled_features``, already pooled for these boxes): FCOS says how
    likely an object is there, the look (and, by ``own``, FCOS)
    which label it has. Then the same NMS per label and limit again. Raw scores out, best first,
    none under the spec's score floor or ``floor``. No score rises, so a cut-off leaves out the
    same boxes before the look as after it."""
    look = spec.get("second_look")
    if not look or not len(boxes):
        return boxes, scores, labels
    x = pooled(features, boxes, look["strides"]) if pooled_features is None else pooled_features
    coef, intercept = np.asarray(look["coef"], np.float64), np.asarray(look["intercept"], np.float64)
    # Row by row in float64 (einsum, not BLAS, whose blocking depends on the count of boxes): a
    # box's probabilities do not depend on which other boxes a cut-off left in.
    logits = np.einsum("kf,lf->kl", x.astype(np.float64), coef) + intercept
    logits -= logits.max(axis=1, keepdims=True)
    q = np.exp(logits)
    q /= q.sum(axis=1, keepdims=True)
    own = float(look.get("own", 0.0))
    count = q.shape[1]
    mixed = (1.0 - own) * q ** float(look["weight"]) + own * np.eye(count)[np.asarray(labels, dtype=np.int64)]
    rescored = np.asarray(scores, dtype=np.float64)[:, None] * mixed
    all_boxes = np.repeat(np.asarray(boxes, dtype=np.float32), count, axis=0)
    all_labels = np.tile(np.arange(count), len(boxes))
    all_scores = rescored.ravel().astype(np.float32)
    shown = all_scores > spec["score_thresh"]
    if floor is not None:
        shown &= all_scores >= floor
    all_boxes, all_scores, all_labels = all_boxes[shown], all_scores[shown], all_labels[shown]
    kept = _nms(all_boxes, all_scores, all_labels, spec["nms_thresh"], spec["detections_per_img"])
    return all_boxes[kept], all_scores[kept], all_labels[kept]


def decode(
    cls_logits: np.ndarray,
    bbox_regression: np.ndarray,
    bbox_ctrness: np.ndarray,
    shape: tuple[int, int],
    grid: Sequence[np.ndarray],
    spec: dict,
    min_score: float | None = None,
    features: Sequence[np.ndarray] = (),
) -> dict:
    """One image's graph outputs (A, C), (A, 4), (A, 1) to its detections in the resized frame
    ``shape`` (height, width), with the batch's anchors ``grid`` (``anchors``): ``boxes`` (K, 4),
    ``scores`` (K,), ``labels`` (K,) as model.json's label indexes, best first; only scores of at
    least ``min_score`` when it is given (the same boxes as without it, cut there). With a
    ``second_look`` in the spec, ``features`` are the image's backbone levels and the labels are
    looked at again (``looked``). Scores are the probabilities answered (``calibrated``, with the
    spec's ``calibration``)."""
    calibration = spec.get("calibration")
    floor = None if min_score is None else raw_score(min_score, calibration)
    bounds = np.cumsum([0, *(len(a) for a in grid)])
    all_boxes, all_scores, all_labels = [], [], []
    for level, level_anchors in enumerate(grid):
        part = slice(bounds[level], bounds[level + 1])
        # Class 0 is the unused background slot: never answered.
        scores = np.sqrt(_sigmoid(cls_logits[part, 1:]) * _sigmoid(bbox_ctrness[part])).ravel()
        shown = scores > spec["score_thresh"]
        if floor is not None:
            shown &= scores >= floor
        candidates = np.flatnonzero(shown)
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
    kept = _nms(boxes, scores, labels, spec["nms_thresh"], spec["detections_per_img"])
    boxes, scores, labels = looked(boxes[kept], scores[kept], labels[kept], features, spec, floor)
    probabilities = calibrated(scores, calibration)
    if min_score is not None and calibration:
        shown = probabilities >= min_score  # the boxes let through by raw_score's hair
        boxes, probabilities, labels = boxes[shown], probabilities[shown], labels[shown]
    return {"boxes": boxes, "scores": probabilities, "labels": labels}


def read_spec(session) -> dict:
    """The decoding figures stored in the ONNX file's metadata."""
    return json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])


def run(session, spec: dict, images: list[np.ndarray], min_score: float | None = None) -> list[dict]:
    """Detections of uint8 (3, H, W) images (resized here when their longer side is not the input
    size), run as one batch, boxes ``[x1, y1, x2, y2]`` in each image's own (H, W) frame; with
    ``min_score`` only those scoring at least that (``decode``)."""
    if not images:
        return []
    batch, shapes = letterbox(images, spec["input_size"])
    levels_out = list(FEATURE_OUTPUTS) if spec.get("second_look") else []
    cls_logits, bbox_regression, bbox_ctrness, *features = session.run(
        ["cls_logits", "bbox_regression", "bbox_ctrness", *levels_out], {"images": batch}
    )
    grid = anchors(batch.shape[2], batch.shape[3], spec)
    results = []
    for i, (image, shape) in enumerate(zip(images, shapes, strict=True)):
        found = decode(
            cls_logits[i],
            bbox_regression[i],
            bbox_ctrness[i],
            shape,
            grid,
            spec,
            min_score,
            [level[i] for level in features],
        )
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

    def detect(
        self, path, original_size: tuple[int, int] | None = None, keep_prob: float | None = None
    ) -> list[dict]:
        """Objects in the image at ``path``, boxes in its own pixels (``original_size`` (width,
        height): the frame to answer in, by default the image's upright size), best first; with
        ``keep_prob`` only those at least that probable (faster, the same boxes)."""
        from PIL import Image, ImageOps

        if original_size is None:
            original_size = ImageOps.exif_transpose(Image.open(path)).size
        array = self.image_array(path)
        (found,) = run(self.session, self.spec, [array], keep_prob)
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
