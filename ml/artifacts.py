"""A trained version on disk: ``model.safetensors`` (weights) + ``model.json`` (everything else).

JSON and safetensors only, so loading a version never unpickles anything. The file names and
``model.json`` here, without torch (the web process reads them and serves ``model.onnx``);
the weights in ml/weights.py.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
# The served model (FP32 or INT8), written at the end of training (ml/recognition/serving.py); for
# versions trained before, exported on first load or download (Predictor.onnx_path).
ONNX_FILE = "model.onnx"
FORMAT_VERSION = 1


def atomic_write(path: pathlib.Path, write) -> None:
    # Write next to the target and rename: a predictor never sees a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def update_meta(directory: str | os.PathLike, changes: dict) -> dict:
    """Set top-level keys of a saved version's ``model.json`` (atomically); return the new meta."""
    path = pathlib.Path(directory) / META_FILE
    meta = {**json.loads(path.read_text()), **changes}
    atomic_write(path, lambda p: pathlib.Path(p).write_text(json.dumps(meta, indent=2, allow_nan=False)))
    return meta


def load_meta(directory: str | os.PathLike) -> dict:
    """``model.json`` of a saved version; ValueError for a format this code cannot read."""
    meta = json.loads((pathlib.Path(directory) / META_FILE).read_text())
    found = meta.get("format_version", FORMAT_VERSION)
    if found != FORMAT_VERSION:
        raise ValueError(
            f"{META_FILE} has format_version {found!r}; this version of ml/ reads format_version "
            f"{FORMAT_VERSION} only."
        )
    return meta
