"""Image recognition trainer and predictor (timm). No Django imports.

Heavy modules (torch, timm) load on first use, so ``import ml.split`` or ``ml.config``
stays cheap for the web process.
"""

from __future__ import annotations

import importlib
import os

# Short HTTP timeouts for hub downloads (ml.models), in case the hub accepts the connection
# and then stalls. huggingface_hub reads them once, when timm first imports it, so they are
# set here, before any ml module can import timm; an explicit environment value wins.
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")

_EXPORTS = {
    "TrainConfig": "ml.config",
    "ALLOWED_ARCHITECTURES": "ml.config",
    "fit": "ml.recipe",
    "TrainResult": "ml.recipe",
    "Predictor": "ml.predictor",
    "PretrainedLoadError": "ml.models",
    "stratified_split": "ml.split",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ml' has no attribute {name!r}")
