"""Inference modes of a loaded predictor: ONNX Runtime, eager, TorchScript trace + freeze, bf16.

``accelerate(predictor, mode)`` swaps the predictor's forward for the faster equivalent the mode
names and warms it up; ``Predictor.load(directory, mode=...)`` calls it. ``auto`` is ``onnx``: the
version's ``model.onnx`` (the very file a download hands out: FP32, or INT8 where training found
it agrees with FP32) run by ONNX Runtime, on CUDA when its CUDA provider is installed; on a GPU
without it, ``auto`` is ``jit`` on CUDA. ``jit`` is float32 TorchScript, the same answers as the
eager model and the FP32 ONNX export within 1e-4. bf16 is faster on a CPU with AMX but moves
probabilities by up to a few hundredths (docs/operations.md, "Inference modes"), so it is served
only when asked for.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from collections.abc import Callable
from typing import Protocol

import torch

from ml.models import features_and_logits
from ml.runtime import OnnxRunner, onnx_providers

logger = logging.getLogger(__name__)


class Servable(Protocol):
    """What a mode needs of a loaded predictor (``ml.recognition.predictor.Predictor`` is one)."""

    model: torch.nn.Module | None  # None once ONNX Runtime serves (``accelerate``)
    device: torch.device
    input_size: int
    forward_fn: Callable
    onnx: OnnxRunner | None

    def predict_tensor(self, batch: torch.Tensor, descriptor: bool = False) -> list[dict]: ...

    def onnx_path(self, rewrite: bool = False) -> str | os.PathLike: ...


MODES = ("auto", "onnx", "jit", "bf16", "eager")


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


def accelerate(predictor: Servable, mode: str, num_threads: int | None = None, passes: int = 1) -> Servable:
    """Swap the predictor's forward for the ``mode`` lever and warm it up.

    ``onnx``: the version's ``model.onnx`` in ONNX Runtime (``num_threads`` intra-op threads, a
    batch in ``passes`` passes side by side: ``run_in_passes``); the torch model is then dropped
    (``predictor.model`` is None).
    ``eager``: plain PyTorch. ``jit``: traced and frozen, float32. ``bf16``: traced and frozen
    with bfloat16 weights, only on a GPU or a CPU with AMX (else ``jit``). ``auto``: ``onnx``,
    except on a GPU when onnxruntime has no CUDA provider (then ``jit`` on the GPU).
    Warming up runs the first, slow passes (profiling, graph
    optimisation) at load time instead of in a request.
    """
    if mode == "auto":
        on_gpu = predictor.device.type != "cpu"
        mode = "jit" if on_gpu and "CUDAExecutionProvider" not in onnx_providers() else "onnx"
    if mode == "bf16" and predictor.device.type == "cpu" and not amx_available():
        logger.warning("inference mode bf16 needs AMX on CPU; using jit")
        mode = "jit"
    if mode == "onnx":
        try:
            predictor.onnx = OnnxRunner(predictor.onnx_path(), num_threads, passes)
            if "features" not in predictor.onnx.outputs:  # exported before descriptors were an output
                predictor.onnx = OnnxRunner(predictor.onnx_path(rewrite=True), num_threads, passes)
        except Exception:  # a net the exporter or the runtime cannot take: serve it with torch
            logger.exception("ONNX Runtime cannot serve this version; using jit")
            predictor.onnx, mode = None, "jit"
    if mode == "jit":
        predictor.forward_fn = _frozen(_FeaturesAndLogits(predictor.model), predictor)
    elif mode == "bf16":
        model = copy.deepcopy(predictor.model).to(torch.bfloat16)
        predictor.forward_fn = _frozen(_FeaturesAndLogits(model, torch.bfloat16), predictor)
    elif mode not in ("eager", "onnx"):
        raise ValueError(f"unknown inference mode {mode!r}")
    if predictor.onnx is not None:
        # ONNX Runtime holds the weights it serves; the torch copy would only double them.
        predictor.model = None
    size = predictor.input_size
    warm = torch.zeros((2, 3, size, size), dtype=torch.uint8)
    for _ in range(2):
        predictor.predict_tensor(warm)
    return predictor
