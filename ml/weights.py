"""A trained version's weights: ``model.safetensors`` beside its ``model.json`` (ml/artifacts.py)."""

from __future__ import annotations

import json
import os
import pathlib

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ml.artifacts import FORMAT_VERSION, META_FILE, WEIGHTS_FILE, atomic_write


def save_version(out_dir: str | os.PathLike, model: nn.Module, meta: dict) -> None:
    """Write the model's state_dict and ``meta`` (must be JSON-serialisable) to ``out_dir``."""
    directory = pathlib.Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    # channels_last weights are non-contiguous views; safetensors wants plain CPU tensors.
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_write(directory / WEIGHTS_FILE, lambda p: save_file(state, p, metadata={"format": "pt"}))
    payload = {"format_version": FORMAT_VERSION, **meta}
    atomic_write(
        directory / META_FILE,
        lambda p: pathlib.Path(p).write_text(json.dumps(payload, indent=2, allow_nan=False)),
    )


def load_weights(directory: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    return load_file(str(pathlib.Path(directory) / WEIGHTS_FILE), device=str(device))
