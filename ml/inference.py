"""Inference modes of a loaded predictor: eager, TorchScript trace + freeze, bf16.

``accelerate(predictor, mode)`` swaps the predictor's forward for the faster equivalent the mode
names and warms it up; ``Predictor.load(directory, mode=...)`` calls it. ``auto`` is jit:
float32, the same answers as the eager model and the ONNX export within 1e-4. bf16 is faster on a
CPU with AMX but moves probabilities by up to a few hundredths (docs/operations.md, "Inference modes"), so it
is served only when asked for.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable
from typing import Protocol

import torch

from ml.models import features_and_logits

logger = logging.getLogger(__name__)


class Servable(Protocol):
    """What a mode needs of a loaded predictor (``ml.recognition.predictor.Predictor`` is one)."""

    model: torch.nn.Module
    device: torch.device
    input_size: int
    forward_fn: Callable

    def predict_tensor(self, batch: torch.Tensor, descriptor: bool = False) -> list[dict]: ...


MODES = ("auto", "jit", "bf16", "eager")


class _FeaturesAndLogits(torch.nn.Module):
    """The predictor's forward as one module, so it can be traced as a whole.

    With ``dtype`` (bf16) the input is cast to it and the outputs back to float32, so the rest of
    the predictor (softmax, descriptor normalisation) is unchanged.
    """

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype | None = None):
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.dtype is not None:
            x = x.to(self.dtype)
        feats, logits = features_and_logits(self.model, x)
        return feats.float(), logits.float()


def _frozen(module: torch.nn.Module, predictor: Servable) -> Callable:
    """TorchScript trace + freeze of ``module`` (BatchNorm folded into the convolutions).

    The traced graph is not specialised on the batch size (the tests check 1 and 10 images).
    """
    size = predictor.input_size
    example = torch.zeros((2, 3, size, size), device=predictor.device).contiguous(
        memory_format=torch.channels_last
    )
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # torch 2.x marks TorchScript deprecated; it is still the fastest lever measured here
        # (torch.compile: minutes of compiling per version on 2 cores, no faster; BENCHMARKS.md).
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.freeze(torch.jit.trace(module.eval(), example))


def amx_available() -> bool:
    """bf16 matrix units (Intel AMX): without them bf16 on CPU is emulated and slower."""
    try:
        return "amx_bf16" in open("/proc/cpuinfo").read()  # noqa: SIM115 - read once at load
    except OSError:
        return False


def accelerate(predictor: Servable, mode: str) -> Servable:
    """Swap the predictor's forward for the ``mode`` lever and warm it up.

    ``eager``: plain PyTorch. ``jit``: traced and frozen, float32. ``bf16``: traced and frozen
    with bfloat16 weights, only on a GPU or a CPU with AMX (else ``jit``). ``auto``: ``jit``.
    Warming up runs the first, slow passes (profiling, graph
    optimisation) at load time instead of in a request.
    """
    if mode == "auto":
        mode = "jit"
    if mode == "bf16" and predictor.device.type == "cpu" and not amx_available():
        logger.warning("inference mode bf16 needs AMX on CPU; using jit")
        mode = "jit"
    if mode == "jit":
        predictor.forward_fn = _frozen(_FeaturesAndLogits(predictor.model), predictor)
    elif mode == "bf16":
        model = copy.deepcopy(predictor.model).to(torch.bfloat16)
        predictor.forward_fn = _frozen(_FeaturesAndLogits(model, torch.bfloat16), predictor)
    elif mode != "eager":
        raise ValueError(f"unknown inference mode {mode!r}")
    size = predictor.input_size
    warm = torch.zeros((2, 3, size, size), dtype=torch.uint8)
    for _ in range(2):
        predictor.predict_tensor(warm)
    return predictor
