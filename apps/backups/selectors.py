"""What a backup holds and what the storage check compares: the rows that name stored files, and
the files that storage holds."""

from __future__ import annotations

from collections.abc import Iterator

from django.apps import apps
from django.core.files.storage import default_storage

from apps.images.models import TrainingImage
from apps.training.artifacts import ARTIFACT_FILES, OPTIONAL_FILES
from apps.training.models import ModelVersion

# Folders of the default storage that rows point into (apps/images/storage.py and
# apps/training/artifacts.py name files under them); nothing else there belongs to the install.
STORED_ROOTS = ("training-images", "models")

# Rows a backup leaves out: made by `migrate` (content types, permissions), kept by database
# triggers from the images themselves (the image counters, the list's blocks, the stored bytes),
# or short-lived (sessions, sign-in attempts, the admin's history).
SKIPPED_MODELS = {
    "contenttypes.contenttype",
    "auth.permission",
    "sessions.session",
    "admin.logentry",
    "authtoken.tokenproxy",
    "images.imagecount",
    "images.imageminute",
    "images.imagehour",
    "quotas.storedbytes",
    "core.listblock",
}
SKIPPED_APPS = {"axes"}


def backed_up_models() -> list:
    """The models whose rows a backup holds, in an order that loads (dependencies first)."""
    from django.core.serializers import sort_dependencies

    chosen = []
    for config in apps.get_app_configs():
        if config.label in SKIPPED_APPS:
            continue
        models = [
            model
            for model in config.get_models()
            if model._meta.label_lower not in SKIPPED_MODELS and not model._meta.proxy
        ]
        if models:
            chosen.append((config, models))
    return sort_dependencies(chosen, allow_cycles=True)


def image_files() -> Iterator[tuple[str, str, str]]:
    """(image id, file, thumbnail) of every training image, in a stable order."""
    rows = TrainingImage.objects.order_by("id").values_list("id", "file", "thumbnail")
    for image_id, file, thumbnail in rows.iterator(chunk_size=2000):
        yield str(image_id), file, thumbnail


def artifact_files() -> Iterator[tuple[str, str]]:
    """(version id, storage name) of every stored model file: the served model.onnx too for the
    versions whose training wrote one (their metrics say how it is served), and the INT8 file a
    version is served from once its INT8 attempt kept one."""
    rows = (
        ModelVersion.objects.exclude(artifact_path="")
        .order_by("id")
        .values_list("id", "artifact_path", "served_file")
    )
    served = set(
        ModelVersion.objects.exclude(artifact_path="")
        .filter(metrics__serving__runtime="onnxruntime")
        .values_list("id", flat=True)
    )
    for version_id, prefix, served_file in rows.iterator(chunk_size=2000):
        extra = (served_file,) if served_file else ()
        for name in ARTIFACT_FILES + (OPTIONAL_FILES if version_id in served else ()) + extra:
            yield str(version_id), f"{prefix}/{name}"


def stored_names(root: str) -> Iterator[str]:
    """Every file name the default storage holds under ``root`` (local folders or S3 prefixes)."""
    try:
        folders, files = default_storage.listdir(root)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{root}/{name}"
    for folder in folders:
        yield from stored_names(f"{root}/{folder}")
