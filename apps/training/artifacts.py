"""Where a model version's files live: Django's default storage, plus a local cache.

A training writes ``model.safetensors``, ``model.json`` and (recognition) the served ``model.onnx``
(ml.artifacts) to a local folder; ``save_artifacts`` uploads them under
``models/<workspace>/<task>/<version id>/`` in the default storage (local disk or S3), and
``local_artifact_dir`` gives any process (web, classify, another worker machine) a local folder
with the files, downloading them once into ``VF_MODEL_CACHE_DIR``: one folder per served file, so
a version that switches to the INT8 file its INT8 attempt stored after training
(``save_served_file``, ``ModelVersion.served_file``) gets a new folder where that file is its
``model.onnx``. ``model.onnx`` is optional:
versions trained before it existed (and detection versions) have none stored, and get an FP32
export in their cache folder when first served or downloaded.
Load a version for inference with ``ml.loading.load_recognition(local_artifact_dir(version), mode=...)``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage

from ml.artifacts import META_FILE, ONNX_FILE, WEIGHTS_FILE

from .models import ModelVersion

logger = logging.getLogger(__name__)

ARTIFACT_FILES = (WEIGHTS_FILE, META_FILE)  # every stored version has these
OPTIONAL_FILES = (ONNX_FILE,)  # stored when the training wrote it (the version's metrics say "serving")


def artifact_prefix(version: ModelVersion) -> str:
    """Storage folder of a version's files (no trailing slash)."""
    return f"models/{version.workspace_id}/{version.task_id}/{version.id}"


def save_artifacts(version: ModelVersion, local_dir: str | os.PathLike) -> str:
    """Upload the files a training wrote to ``local_dir``; return the storage prefix.

    Existing files under the prefix are replaced (a rerun of the same version overwrites its own
    files instead of getting storage's ``_abc123`` renamed copies). When a write fails (a full
    disk), what was written under the prefix is removed again, so no half a version is left.
    """
    prefix = artifact_prefix(version)
    names = ARTIFACT_FILES + tuple(name for name in OPTIONAL_FILES if (Path(local_dir) / name).is_file())
    try:
        for name in names:
            target = f"{prefix}/{name}"
            if default_storage.exists(target):
                default_storage.delete(target)
            with open(Path(local_dir) / name, "rb") as fh:
                saved = default_storage.save(target, File(fh, name=name))
            if saved != target:  # a storage that renames anyway would break loading: fail loudly
                raise RuntimeError(f"storage saved {target} as {saved}")
    except BaseException:
        for name in names:
            try:
                default_storage.delete(f"{prefix}/{name}")
            except Exception:  # the write's error is the one to report
                logger.exception("could not remove %s/%s after a failed save", prefix, name)
        raise
    return prefix


def served_file(version: ModelVersion) -> str:
    """The stored file the version is served from: its INT8 file once the INT8 attempt kept one
    (``ModelVersion.served_file``), else ``model.onnx``."""
    return version.served_file or ONNX_FILE


def delete_stored_file(version: ModelVersion, name: str) -> None:
    """Delete one stored file of the version (a served file no row names any more)."""
    try:
        default_storage.delete(f"{version.artifact_path}/{name}")
    except Exception:
        logger.exception("could not delete %s/%s", version.artifact_path, name)


def _cache_dir(version: ModelVersion) -> Path:
    """The local folder of the version as it is served now: one per served file, so a process
    that cached the FP32 folder never serves it once the version switched to its INT8 file."""
    served = served_file(version)
    name = str(version.id) if served == ONNX_FILE else f"{version.id}.{served.removesuffix('.onnx')}"
    return Path(settings.VF_MODEL_CACHE_DIR) / name


def save_served_file(version: ModelVersion, local_file: str | os.PathLike, name: str) -> None:
    """Upload a served file the training did not write (the INT8 file, named by its digest) beside
    the version's other files. A name is never reused for other bytes, so it is written once."""
    target = f"{version.artifact_path}/{name}"
    if default_storage.exists(target):
        return
    with open(local_file, "rb") as fh:
        saved = default_storage.save(target, File(fh, name=name))
    if saved != target:
        raise RuntimeError(f"storage saved {target} as {saved}")


def local_artifact_dir(version: ModelVersion) -> Path:
    """A local folder holding the version's ``model.safetensors`` and ``model.json`` and, as
    ``model.onnx``, its served file when one is stored (``served_file``: the FP32 export or the
    INT8 file).

    Downloaded from storage on first use into ``VF_MODEL_CACHE_DIR/<version id>/`` (an INT8-served
    version: ``<version id>.<its file's stem>/``); the folder is filled in a temporary sibling and
    renamed into place, so concurrent callers never see half a version. Raises FileNotFoundError
    when the version has no stored artifacts (not TRAINED).
    """
    if not version.artifact_path:
        raise FileNotFoundError(f"model version {version.id} has no artifacts")
    target = _cache_dir(version)
    if all((target / name).is_file() for name in ARTIFACT_FILES):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{version.id}."))
    try:
        for name in ARTIFACT_FILES:
            with (
                default_storage.open(f"{version.artifact_path}/{name}", "rb") as src,
                open(tmp / name, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, length=1024 * 1024)
        stored = f"{version.artifact_path}/{served_file(version)}"
        # model.onnx may be missing (trained before it existed: exported on first use); an INT8
        # file the version names must be there.
        if version.served_file or default_storage.exists(stored):
            with default_storage.open(stored, "rb") as src, open(tmp / ONNX_FILE, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1024 * 1024)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process won the race (target exists and is not empty): use its copy.
            if not all((target / name).is_file() for name in ARTIFACT_FILES):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


BUNDLE_README = """Model version {version} of task "{task}" ({task_type}).

model.safetensors  the weights ({architecture}), loadable with safetensors
model.json         architecture, input size, normalisation, labels in output order, thresholds,
                   training config and metrics
model.onnx         the model the service runs ({precision}: the very file it serves), for
                   onnxruntime and other ONNX runtimes: input "images" is a uint8 batch
                   (N, 3, {size}, {size}) of RGB images resized to {size} x {size}; output "scores"
                   holds the probabilities in the order of model.json's labels (regression: the
                   values), output "features" the penultimate features (L2-normalise them for the
                   descriptor). Normalisation and softmax/sigmoid are in the graph. model.json's
                   "serving" says how INT8 compared with FP32 on the version's test side.
"""


DETECTION_README = """Model version {version} of task "{task}" (object detection).

model.safetensors  the weights: torchvision FCOS with an FPN on timm's tf_efficientnet_lite0
                   (ml/detection/detector.py build_detector), loadable with safetensors
model.json         labels in class order (class i+1 of the net is label i), input size, the
                   training config and metrics; served by
                   ml.detection.detector.DetectionPredictor.load(folder)
"""
DETECTION_ONNX_README = """model.onnx         the detector the service runs (FP32, the very file it serves),
                   for onnxruntime: backbone, FPN and FCOS heads; input "images" is a uint8 batch
                   (N, 3, H, W) of RGB images resized so their longer side is {size} px, at the
                   top left of a grey canvas (H and W multiples of 32); outputs cls_logits,
                   bbox_regression and bbox_ctrness (and features_8, features_16, features_32,
                   the backbone's levels, when the version looks at its labels a second time).
                   The decoding and NMS are postprocess.py's.
postprocess.py     the batching, decoding, NMS and second look the service runs around the
                   graph, in numpy (needs numpy, Pillow, onnxruntime; no torch): `python postprocess.py <this
                   folder> photo.jpg` prints the objects with boxes in the photo's pixels; its
                   docstring documents the graph's outputs and the decoding.
"""
# Task types whose ONNX file is written by their training only (no export on first use): a version
# trained before that has none, and its bundle has no ONNX file.
EXPORTED_AT_TRAINING = {"detection"}


def has_served_onnx(version: ModelVersion) -> bool:
    """Whether the version has a served ONNX file (a detection version trained before detectors
    were exported has none)."""
    return (local_artifact_dir(version) / ONNX_FILE).is_file()


def onnx_file(version: ModelVersion) -> Path:
    """The version's served ONNX file: stored by its training, or (trained before) exported once per
    cache folder (ml.recognition.export) and kept there."""
    directory = local_artifact_dir(version)
    target = directory / ONNX_FILE
    if not target.is_file():
        from ml.recognition.export import export_onnx  # loads torch: only when someone asks for ONNX

        # Export beside the target and rename, so a concurrent request never reads half a file.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".export.", suffix=".onnx")
        os.close(fd)
        try:
            export_onnx(directory, tmp)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target


def _describe_architecture(meta: dict) -> str:
    """The bundle README's words for the net: one timm net, a probe on a timm net's middle stages
    (ml/recognition/taps.py), or a blend of several (ml/recognition/blend.py)."""

    def one(net: dict) -> str:
        taps = net.get("taps")
        if not taps:
            return f"timm architecture {net.get('architecture')}"
        stages = ", ".join(str(s) for s in taps["stages"])
        return (
            f"a linear layer on stages {stages} of timm architecture {taps['architecture']}, each pooled "
            f"on a {taps['grid']} x {taps['grid']} grid (ml/recognition/taps.py)"
        )

    blend = meta.get("blend")
    if not blend:
        return one(meta)
    members = " and ".join(
        f"{one(m)} at {m['input_size']} px (weight {w:.2f})"
        for m, w in zip(blend["members"], blend["weights"], strict=True)
    )
    prefixes = ", ".join(f"members.{i}." for i in range(len(blend["members"])))
    return f"a blend (ml/recognition/blend.py) of {members}, their weights under {prefixes}"


def _precision(meta: dict) -> str:
    serving = meta.get("serving") or {}
    if serving.get("precision") == "int8":
        return "INT8, static quantisation calibrated on the task's training images"
    return "FP32"


def bundle_file(version: ModelVersion) -> Path:
    """A zip of the version's weights, model.json, ONNX export and a README, in a temp file.

    The caller deletes it (the download view streams it and removes it when done).
    """
    import json
    import zipfile

    directory = local_artifact_dir(version)
    meta = json.loads((directory / META_FILE).read_text())
    # How the version is served is decided after its model.json was stored (the INT8 attempt runs
    # after TRAINED): the bundle's model.json says what the row says.
    if (version.metrics or {}).get("serving"):
        meta["serving"] = version.metrics["serving"]
    detection = meta.get("task_type") in EXPORTED_AT_TRAINING
    onnx = onnx_file(version) if not detection or has_served_onnx(version) else None
    template = DETECTION_README + (DETECTION_ONNX_README if onnx else "") if detection else BUNDLE_README
    readme = template.format(
        version=version.version,
        task=version.task.name,
        task_type=meta.get("task_type"),
        architecture=_describe_architecture(meta),
        size=meta.get("input_size"),
        precision=_precision(meta),
    )
    fd, path = tempfile.mkstemp(prefix="model-bundle-", suffix=".zip")
    os.close(fd)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.write(directory / WEIGHTS_FILE, WEIGHTS_FILE)
        bundle.writestr(META_FILE, json.dumps(meta, indent=2))
        if onnx is not None:
            bundle.write(onnx, ONNX_FILE)
        if onnx is not None and detection:
            from ml.detection import postprocess  # numpy only: the file the bundle's user runs

            bundle.write(postprocess.__file__, "postprocess.py")
        bundle.writestr("README.txt", readme)
    return Path(path)


def delete_artifacts(version: ModelVersion) -> None:
    """Delete the version's stored files and its local cache copies. Missing files are fine."""
    if version.artifact_path:
        served = (version.served_file,) if version.served_file else ()
        for name in ARTIFACT_FILES + OPTIONAL_FILES + served:
            try:
                default_storage.delete(f"{version.artifact_path}/{name}")
            except Exception:  # a storage hiccup must not keep the row alive; log and go on
                logger.exception("could not delete %s/%s", version.artifact_path, name)
    cache = Path(settings.VF_MODEL_CACHE_DIR)
    for folder in [cache / str(version.id), *cache.glob(f"{version.id}.*")]:
        shutil.rmtree(folder, ignore_errors=True)
