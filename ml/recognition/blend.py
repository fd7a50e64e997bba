"""A blend: several nets served as one module and one forward pass.

The recipe (ml/recognition/recipe.py) may find that a linear probe on ImageNet features and a small net
trained from scratch on the images themselves are each good and wrong on different images; the
weighted mean of their probabilities then beats both. ``Blend`` holds the member nets and serves
them from the one input the predictor builds (the largest member's size, normalised with the first
member's mean and std): a smaller member gets that input average-pooled by a whole factor and
re-normalised with its own statistics, so what it sees at serving is exactly what it trained on.
A blend of one member is a net trained on pooled input (a net from scratch trained on the probe's
cache), served the same way.

Outputs are logits whose activation is the weighted mean of the members' activations: the log of
the mixed softmax (multi_class), the logit of the mixed sigmoid (multi_label), or the weighted
mean value (regression). Features (the ``descriptor``) are the members' features side by side.
Everything is plain tensor arithmetic: TorchScript tracing and the ONNX export take it as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ml.models import create_empty_model, features_and_logits
from ml.recognition import taps

BLEND_ARCHITECTURE = "blend"
# Mixing weights tried for the first member of a two-member blend (the rest goes to the second).
WEIGHT_GRID: tuple[float, ...] = (0.25, 0.4, 0.5, 0.6, 0.75)
_EPS = 1e-7


class Blend(nn.Module):
    """``members[i]`` sees the input pooled by ``pools[i]`` and normalised with its own stats."""

    def __init__(
        self,
        members: Sequence[nn.Module],
        *,
        task_type: str,
        weights: Sequence[float],
        pools: Sequence[int],
        means: Sequence[Sequence[float]],
        stds: Sequence[Sequence[float]],
    ):
        super().__init__()
        if not members or not len(members) == len(weights) == len(pools) == len(means) == len(stds):
            raise ValueError("a blend needs one weight, pool, mean and std per member")
        if any(p < 1 for p in pools) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("pools must be >= 1 and weights non-negative with a positive sum")
        self.members = nn.ModuleList(members)
        self.task_type = task_type
        total = float(sum(weights))
        self.weights = [float(w) / total for w in weights]
        self.pools = [int(p) for p in pools]
        register_renormalisation(self, means, stds)

    def member_input(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if self.pools[i] > 1:
            x = F.avg_pool2d(x, self.pools[i])
        return renormalise(self, i, x)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, logits = [], []
        for i, member in enumerate(self.members):
            f, out = features_and_logits(member, self.member_input(i, x))
            feats.append(f.flatten(1))
            logits.append(out.float())
        return torch.cat(feats, dim=1), mix_logits(self.task_type, logits, self.weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[1]


def register_renormalisation(module: nn.Module, means, stds) -> None:
    """Buffers that turn an input normalised with member 0's statistics into member i's:
    (x * std_0 + mean_0 - mean_i) / std_i = x * scale_i + shift_i, per channel."""
    mean0, std0 = torch.tensor(means[0]), torch.tensor(stds[0])
    for i, (mean, std) in enumerate(zip(means, stds, strict=True)):
        mean_i, std_i = torch.tensor(mean), torch.tensor(std)
        module.register_buffer(f"scale{i}", (std0 / std_i).view(1, 3, 1, 1), persistent=False)
        module.register_buffer(f"shift{i}", ((mean0 - mean_i) / std_i).view(1, 3, 1, 1), persistent=False)


def renormalise(module: nn.Module, i: int, x: torch.Tensor) -> torch.Tensor:
    """Member i's normalisation of ``x`` (see ``register_renormalisation``)."""
    if i == 0:
        return x
    return x * getattr(module, f"scale{i}") + getattr(module, f"shift{i}")


def mix_logits(task_type: str, logits: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Logits whose activation is the weighted mean of each member's activation."""
    if len(logits) == 1:
        return logits[0]
    if task_type == "regression":
        return sum(w * out for w, out in zip(weights, logits, strict=True))
    if task_type == "multi_class":
        p = sum(w * out.softmax(dim=1) for w, out in zip(weights, logits, strict=True))
        return torch.log(p.clamp_min(_EPS))
    p = sum(w * out.sigmoid() for w, out in zip(weights, logits, strict=True))
    p = p.clamp(_EPS, 1.0 - _EPS)
    return torch.log(p) - torch.log1p(-p)


def mix_outputs(outputs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The same mix on activations already computed (validation outputs, numpy)."""
    return sum(w * out for w, out in zip(weights, outputs, strict=True))


def spec(blend: Blend, architectures: Sequence[str], sizes: Sequence[int], means, stds, taps=None) -> dict:
    """What model.json keeps of a blend, enough for ``create_empty`` to rebuild it. ``taps``: per
    member, the ``ml.recognition.taps.spec`` of a probe on middle layers, else None."""
    taps = taps or [None] * len(blend.members)
    return {
        "members": [
            {
                "architecture": a, "input_size": int(s), "pool": p, "mean": list(m), "std": list(sd),
                **({"taps": t} if t else {}),
            }
            for a, s, p, m, sd, t in zip(architectures, sizes, blend.pools, means, stds, taps, strict=True)
        ],
        "weights": blend.weights,
    }  # fmt: skip


def create_empty(meta: dict) -> Blend:
    """A blend with random weights, shaped as ``meta["blend"]`` says, for loading a state_dict."""
    members = meta["blend"]["members"]
    outputs = int(meta["num_outputs"])
    nets = [
        taps.create_empty(m["taps"], outputs)
        if m.get("taps")
        else create_empty_model(m["architecture"], outputs)
        for m in members
    ]
    return Blend(
        nets,
        task_type=meta["task_type"],
        weights=meta["blend"]["weights"],
        pools=[int(m["pool"]) for m in members],
        means=[m["mean"] for m in members],
        stds=[m["std"] for m in members],
    )
