"""Several frozen ImageNet backbones and one linear head on their features: one module, one pass.

A photo task with a few dozen images per label is served well by a linear head on frozen features,
and features of several backbones side by side can beat any one of them (centre-cropped food photos:
lite0 + lite2 0.749 against lite2's 0.721 in cross-validation on the benchmark's training sides,
bench/dev_photos.py; squashed whole, lite2 alone did better). The recipe lets each task's own
cross-validation decide which backbones stay (ml/recognition/photo.py). ``MultiProbe`` holds the
backbones, each reading the one input the predictor builds (the largest member's size, normalised
with the first member's statistics) resized to its own native size and re-normalised with its own
statistics, so every member sees what it saw on ImageNet. With ``flip_average`` each member's
features are the mean of the image's and its mirror image's (one batch of both), which cross-
validation keeps where it helps.

Everything is plain tensor arithmetic (bilinear resize, flip, concatenation, a Linear): TorchScript
tracing and the ONNX export take it as it is, and the recipe extracts the training features by
calling the very same ``member_features`` the served module runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ml.models import create_empty_model
from ml.recognition.blend import register_renormalisation, renormalise

MULTI_ARCHITECTURE = "multi_probe"


class MultiProbe(nn.Module):
    """``backbones[i]`` (timm nets without classifier) sees the input resized to ``sizes[i]``."""

    def __init__(
        self,
        backbones: Sequence[nn.Module],
        *,
        sizes: Sequence[int],
        means: Sequence[Sequence[float]],
        stds: Sequence[Sequence[float]],
        num_outputs: int,
        flip_average: bool = False,
        input_size: int | None = None,
    ):
        super().__init__()
        if not backbones or not len(backbones) == len(sizes) == len(means) == len(stds):
            raise ValueError("a multi probe needs one size, mean and std per backbone")
        self.backbones = nn.ModuleList(backbones)
        self.sizes = [int(s) for s in sizes]
        # The side of the input it is served (the largest member's unless told).
        self.input_size = int(input_size or max(self.sizes))
        self.flip_average = bool(flip_average)
        self.dims = [int(b.num_features) for b in backbones]
        self.head = nn.Linear(sum(self.dims), num_outputs)
        register_renormalisation(self, means, stds)

    def member_input(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.sizes[i] or x.shape[-2] != self.sizes[i]:
            x = F.interpolate(x, size=(self.sizes[i], self.sizes[i]), mode="bilinear", align_corners=False)
        return renormalise(self, i, x)

    def member_features(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Backbone ``i``'s pooled features of a normalised batch (no flip averaging)."""
        backbone = self.backbones[i]
        return backbone.forward_head(backbone.forward_features(self.member_input(i, x)), pre_logits=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.flip_average:
            both = torch.cat([x, x.flip(-1)])
            n = x.shape[0]
            parts = [self.member_features(i, both) for i in range(len(self.backbones))]
            return torch.cat([(p[:n] + p[n:]) * 0.5 for p in parts], dim=1)
        return torch.cat([self.member_features(i, x) for i in range(len(self.backbones))], dim=1)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(x)
        return feats, self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[1]


def spec(module: MultiProbe, architectures: Sequence[str], means, stds) -> dict:
    """What model.json keeps of a multi probe, enough for ``create_empty`` to rebuild it."""
    return {
        "members": [
            {"architecture": a, "input_size": s, "mean": list(m), "std": list(sd)}
            for a, s, m, sd in zip(architectures, module.sizes, means, stds, strict=True)
        ],
        "flip_average": module.flip_average,
        "input_size": module.input_size,
    }


def create_empty(meta: dict) -> MultiProbe:
    """A multi probe with random weights, shaped as ``meta["multi"]`` says, for a state_dict."""
    members = meta["multi"]["members"]
    return MultiProbe(
        [create_empty_model(m["architecture"], 0) for m in members],
        sizes=[int(m["input_size"]) for m in members],
        means=[m["mean"] for m in members],
        stds=[m["std"] for m in members],
        num_outputs=int(meta["num_outputs"]),
        flip_average=bool(meta["multi"].get("flip_average", False)),
        input_size=int(meta["multi"].get("input_size") or meta["input_size"]),
    )


class MemberView(nn.Module):
    """Backbone ``index`` of ``parent`` alone, as ``ml.recognition.train.forward_outputs`` calls a net: its
    features (the logits are empty). The recipe extracts training features through it, so they are
    exactly what the served module computes."""

    def __init__(self, parent: MultiProbe, index: int):
        super().__init__()
        self.parent = parent
        self.index = index

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.parent.member_features(self.index, x)
        return feats, feats[:, :0]
