"""A linear probe on middle layers: an EfficientNet's stage outputs, pooled on a small grid.

A probe on the last layer's globally pooled features (``ml.recognition.probe``) reads what ImageNet's classes
need: whole objects, anywhere in the picture. Small, centred, upscaled images (scans, product
shots on a plain ground) are told apart by parts and where they sit, which the middle stages
still hold. ``Taps`` runs the net's stem and its stages up to the last tapped one, average-pools
each tapped stage's output on a ``grid`` x ``grid`` grid, puts the pools side by side (the
``descriptor``) and ends in one linear layer: still one forward pass, and cheaper than the whole
net because the stages after the last tap never run.

Measured before it was built (lite0 at 224 px, Fashion-MNIST: 1,200 training images, 2,000 others
to test, on two slices disjoint from each other and from the benchmark's images; scikit-learn
logistic regression on standardised features, best of four strengths): the last layer 0.854 and
0.867; stages 3-5 (of 0-6) pooled globally 0.862 and 0.876; the same stages on a 2 x 2 grid 0.876
and 0.889. The recipe offers both probes and keeps the one that scores better on validation.

Pooling is written out as slices (the cells of ``adaptive_avg_pool2d``), so TorchScript tracing
and the ONNX export take it at any stage size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ml.models import create_empty_model
from ml.recognition.kernel import RBFHead

TAPS_GRID = 2
# Architectures with ``conv_stem``, ``bn1``, ``blocks`` (stages), ``conv_head`` and ``bn2``.
_NEEDED = ("conv_stem", "bn1", "blocks", "conv_head", "bn2")


def default_stages(net: nn.Module) -> list[int] | None:
    """The stages to tap: the three before the last (3, 4, 5 of EfficientNet's 0-6), or None when
    the net is not built of stages this module knows."""
    if not all(hasattr(net, name) for name in _NEEDED) or len(net.blocks) < 4:
        return None
    n = len(net.blocks)
    return [n - 4, n - 3, n - 2]


def grid_pool(x: torch.Tensor, grid: int) -> torch.Tensor:
    """``adaptive_avg_pool2d(x, grid).flatten(1)``, cell by cell (channel-major order)."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    cells = []
    for i in range(grid):
        top, bottom = (i * h) // grid, -(-((i + 1) * h) // grid)
        for j in range(grid):
            left, right = (j * w) // grid, -(-((j + 1) * w) // grid)
            cells.append(x[:, :, top:bottom, left:right].mean(dim=(2, 3)))
    return torch.stack(cells, dim=2).flatten(1)


def _out_channels(module: nn.Module) -> int:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


class Taps(nn.Module):
    """``net``'s stem and stages up to ``max(stages)``, the tapped stages grid-pooled, a linear head.

    With ``final`` the remaining stages, the head convolution and its global pool run too, and
    their features come first (used once, to extract both feature sets in one pass). The modules
    are ``net``'s own, not copies.
    """

    def __init__(
        self,
        net: nn.Module,
        stages: Sequence[int],
        grid: int,
        num_outputs: int,
        final: bool = False,
        kernel: int = 0,
    ):
        super().__init__()
        stages = sorted(int(s) for s in stages)
        if not stages or stages[0] < 0 or stages[-1] >= len(net.blocks) or grid < 1:
            raise ValueError(f"cannot tap stages {stages} on a grid of {grid}")
        self.stages = stages
        self.grid = int(grid)
        self.final = final
        self.conv_stem, self.bn1 = net.conv_stem, net.bn1
        upto = len(net.blocks) if final else stages[-1] + 1
        self.blocks = nn.Sequential(*list(net.blocks)[:upto])
        if final:
            self.conv_head, self.bn2 = net.conv_head, net.bn2
        self.final_dim = _out_channels(net.conv_head) if final else 0
        self.tap_dim = sum(_out_channels(net.blocks[s]) for s in stages) * self.grid**2
        # ``kernel`` landmarks: an RBF-kernel head (ml/recognition/kernel.py) instead of a linear layer.
        self.kernel = int(kernel)
        in_dim = self.final_dim + self.tap_dim
        self.head = (
            RBFHead(in_dim, self.kernel, num_outputs) if self.kernel else nn.Linear(in_dim, num_outputs)
        )

    def tapped(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv_stem(x))
        feats = []
        for i, stage in enumerate(self.blocks):
            x = stage(x)
            if i in self.stages:
                feats.append(grid_pool(x, self.grid))
        if self.final:
            feats.insert(0, self.bn2(self.conv_head(x)).mean(dim=(2, 3)))
        return torch.cat(feats, dim=1)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.tapped(x)
        return feats, self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[1]


def spec(taps: Taps, architecture: str) -> dict:
    """What model.json keeps of a probe on middle layers, enough for ``create_empty``."""
    return {
        "architecture": architecture,
        "stages": list(taps.stages),
        "grid": taps.grid,
        **({"kernel": taps.kernel} if taps.kernel else {}),
    }


def create_empty(taps_spec: dict, num_outputs: int) -> Taps:
    """A ``Taps`` with random weights, shaped as ``taps_spec`` says, for loading a state_dict."""
    net = create_empty_model(taps_spec["architecture"], num_outputs)
    return Taps(
        net, taps_spec["stages"], int(taps_spec["grid"]), num_outputs, kernel=int(taps_spec.get("kernel", 0))
    )
