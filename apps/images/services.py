"""Writes for training images: ingestion, labels, flags, bulk updates and deletion.

Files and rows move together. Ingestion writes the files first and the rows in one transaction,
and deletes the files if the transaction fails; deletion removes the rows and deletes the files
once the transaction commits, so a rolled-back delete never loses a file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
import zipfile
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from PIL import Image

from apps.core.errors import (
    DATABASE_UNAVAILABLE,
    MSG_STORAGE_FULL,
    ConflictError,
    DomainError,
    StorageFullError,
    is_storage_full,
)
from apps.core.ids import parse_uuid
from apps.quotas import selectors as quota_selectors
from apps.quotas.services import quota_check
from apps.workspaces.models import Workspace
from ml.images import draft, to_rgb  # the model's own RGB/EXIF rule (Pillow alone, no torch)

from . import storage
from .decoding import DECODE_GATE, check_size, decode, decode_base64, max_image_bytes, open_image
from .errors import (
    MSG_LABEL_NOT_ON_IMAGE,
    MSG_MANY_SOURCES,
    MSG_NO_SOURCE,
    MSG_STORAGE_UNAVAILABLE,
    MSG_TOO_LARGE,
    MSG_VALUE_NOT_ALLOWED,
    MSG_VALUE_REQUIRED,
    DuplicateImageError,
    ImageInputError,
    ImageNotFoundError,
    ImageTooLargeError,
    LabelNotFoundError,
    StorageUnavailableError,
)
from .fetch import fetch_url
from .models import ImageCount, ImageLabel, TrainingImage

if TYPE_CHECKING:  # annotations only: images never import the labels app at run time
    from apps.labels.models import Label

logger = logging.getLogger(__name__)

# The shorter side of a stored training image, unless the upload says noresize.
MAX_SHORTER_SIDE = 512
THUMBNAIL_SIZE = (256, 256)
JPEG_QUALITY = 92
THUMBNAIL_QUALITY = 80
# Formats kept byte for byte when nothing has to change (noresize, no EXIF rotation).
_KEEP_AS_IS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


# --- helpers ----------------------------------------------------------------------------------------


def _as_uuid(value, error: Exception) -> uuid.UUID:
    parsed = parse_uuid(value)
    if parsed is None:
        raise error
    return parsed


def _label_model() -> type[Label]:
    """The Label model, reached through the image-label link images own: the labels app sits above
    images (it counts and wipes images), so images never import it."""
    return ImageLabel._meta.get_field("label").related_model


def labels_resolve(*, workspace: Workspace, label_ids: Iterable) -> list[Label]:
    """The workspace's labels with these ids, in the given order; 404 if any is not there."""
    ids = [_as_uuid(label_id, LabelNotFoundError()) for label_id in label_ids]
    if not ids:
        return []
    labels = _label_model().objects.filter(workspace=workspace, id__in=set(ids))
    found = {label.id: label for label in labels}
    if len(found) != len(set(ids)):
        raise LabelNotFoundError()
    return [found[label_id] for label_id in dict.fromkeys(ids)]


def _check_value(label: Label, value) -> float | None:
    if label.type == _label_model().Type.VALUE:
        if value is None:  # the label's type asks for one: a conflict with it, not a malformed body
            raise ConflictError(MSG_VALUE_REQUIRED)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ImageInputError(MSG_VALUE_REQUIRED) from None
    if value is not None:
        raise ConflictError(MSG_VALUE_NOT_ALLOWED)
    return None


def _encode(image: Image.Image, fmt: str = "JPEG", quality: int = JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=quality, optimize=True)
    return buffer.getvalue()


def _scaled(image: Image.Image, shorter_side: int) -> Image.Image:
    width, height = image.size
    shorter = min(width, height)
    if shorter <= shorter_side:  # never upscale
        return image
    scale = shorter_side / shorter
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def prepare_image(data: bytes, *, noresize: bool) -> tuple[bytes, str, bytes, tuple[int, int]]:
    """Validate and convert upload bytes: (stored bytes, extension, thumbnail bytes, (w, h))."""
    original, image_format = open_image(data, load=False)
    if not noresize:  # a large JPEG decodes at 1/2, 1/4 or 1/8 scale, still >= 512 px on both sides
        original = draft(original, MAX_SHORTER_SIDE)
    width, height = original.size
    with DECODE_GATE.hold(width * height):  # the decoded pixels live only inside this block
        decode(original)
        rgb = to_rgb(original)
        oriented_as_is = rgb.size == original.size and original.getexif().get(0x0112, 1) in (1, None)
        if noresize and image_format in _KEEP_AS_IS and oriented_as_is:
            stored, extension = data, _KEEP_AS_IS[image_format]
            final = rgb
        else:
            final = rgb if noresize else _scaled(rgb, MAX_SHORTER_SIDE)
            stored, extension = _encode(final), "jpg"
        del original, rgb
        thumbnail = final.copy()
        thumbnail.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
        return stored, extension, _encode(thumbnail, quality=THUMBNAIL_QUALITY), final.size


# --- ingestion --------------------------------------------------------------------------------------


def _image_quotas_guarded(limits: dict) -> bool:
    return limits["images"] is not None or limits["stored_bytes"] is not None


def _check_image_quotas(workspace_id, limits: dict, *, adding_bytes: int) -> None:
    """Refuse (403) an image that would take the workspace past its image or byte quota, by the
    kept counters (never a count of the rows)."""
    images = ImageCount.objects.filter(workspace_id=workspace_id).values_list("images", flat=True).first()
    quota_check(quota="images", limit=limits["images"], used=images or 0)
    used_bytes = quota_selectors.stored_bytes_used(workspace_id=workspace_id)
    quota_check(quota="stored_bytes", limit=limits["stored_bytes"], used=used_bytes, adding=adding_bytes)


def _lock_image_counter(workspace_id) -> None:
    """Hold the workspace's image counter row until the transaction ends, so concurrent uploads to
    a workspace with quotas check and insert one at a time: each reads the counts the one before
    committed (PostgreSQL: the row lock of a no-op UPDATE; SQLite: that write takes the database
    write lock before anything is read). The images table's triggers take the same row first on
    every insert and delete (then the bytes counter), so the lock order is one and the same."""
    ImageCount.objects.get_or_create(workspace_id=workspace_id)  # the triggers upsert it anyway
    ImageCount.objects.filter(workspace_id=workspace_id).update(images=F("images"))


def training_image_check_quota(*, workspace: Workspace) -> None:
    """Refuse (403) at once when the workspace cannot take one more image (its image or byte quota
    is reached): before a zip is unpacked or records are classified to be stored. A hint, not the
    guarantee: ``training_image_ingest`` checks again under its lock."""
    limits = quota_selectors.quota_limits(workspace_id=workspace.id)
    if _image_quotas_guarded(limits):
        _check_image_quotas(workspace.id, limits, adding_bytes=1)


def training_image_ingest(
    *,
    workspace: Workspace,
    data: bytes,
    label_ids: Iterable = (),
    values: Mapping | None = None,
    meta_data: dict | None = None,
    noresize: bool = False,
    test_image: bool = False,
    real: bool = False,
) -> TrainingImage:
    """Store uploaded image bytes as a training image of ``workspace``, with labels attached.

    The bytes are validated (``ImageInputError``), the content hash (SHA-256 of the uploaded
    bytes) must be new in the workspace (``DuplicateImageError`` names the existing image), and
    every label must belong to the workspace (``LabelNotFoundError``); ``values`` maps value-label
    ids to their regression targets. Unless ``noresize`` the shorter side is scaled down to 512 px.
    Nothing is stored when anything fails: the files are written first and deleted again if the
    row cannot be written.

    Quotas (apps/quotas: images, stored bytes) are checked twice: at once, so a full workspace is
    refused before the image is decoded, and again in the transaction that inserts the row, with
    the workspace's image counter row locked (``_lock_image_counter``), so concurrent uploads never
    pass a limit. A workspace without limits takes no lock.
    """
    limits = quota_selectors.quota_limits(workspace_id=workspace.id)
    guarded = _image_quotas_guarded(limits)
    if guarded:
        _check_image_quotas(workspace.id, limits, adding_bytes=1)
    content_hash = hashlib.sha256(data).hexdigest()
    values = {str(key): value for key, value in (values or {}).items()}
    labels = labels_resolve(workspace=workspace, label_ids=[*label_ids, *values.keys()])
    label_values = [(label, _check_value(label, values.get(str(label.id)))) for label in labels]
    existing = (
        TrainingImage.objects.filter(workspace=workspace, content_hash=content_hash).values("id").first()
    )
    if existing:
        raise DuplicateImageError(existing["id"])

    stored, extension, thumbnail, (width, height) = prepare_image(data, noresize=noresize)
    image_name, thumb_name = storage.new_names(workspace.id, extension)
    written: list[str] = []
    committing = False
    try:
        try:
            written.append(storage.save_bytes(image_name, stored))
            written.append(storage.save_bytes(thumb_name, thumbnail))
        except Exception as exc:  # any backend: disk full, permissions, S3 down
            # A write that failed part way leaves its part on disk (Django's FileSystemStorage
            # does not remove it); the names are this upload's own (random), so remove both.
            storage.delete_files(*(name for name in (image_name, thumb_name) if name not in written))
            if is_storage_full(exc):
                logger.error("Could not write %s to storage: %s", image_name, exc)
                raise StorageFullError(MSG_STORAGE_FULL) from exc
            logger.exception("Could not write %s to storage", image_name)
            raise StorageUnavailableError(MSG_STORAGE_UNAVAILABLE) from exc
        with transaction.atomic():
            if guarded:
                _lock_image_counter(workspace.id)
                _check_image_quotas(workspace.id, limits, adding_bytes=len(stored) + len(thumbnail))
            image = TrainingImage.objects.create(
                workspace=workspace,
                stored_bytes=len(stored) + len(thumbnail),
                file=written[0],
                thumbnail=written[1],
                img_width=width,
                img_height=height,
                content_hash=content_hash,
                meta_data=meta_data or {},
                test_image=test_image,
                real=real,
            )
            ImageLabel.objects.bulk_create(
                ImageLabel(image=image, label=label, value=value) for label, value in label_values
            )
            committing = True  # what fails from here on is the COMMIT itself
    except IntegrityError as exc:
        storage.delete_files(*written)
        # Two uploads of the same bytes raced past the check above: the constraint decided.
        existing = TrainingImage.objects.filter(workspace=workspace, content_hash=content_hash).first()
        if existing is not None:
            raise DuplicateImageError(existing.id) from exc
        raise
    except DATABASE_UNAVAILABLE:
        # The connection broke. Before the COMMIT nothing was written: the files go. During the
        # COMMIT the server may have committed before the answer was lost: then deleting the files
        # would leave a row without its file, so they stay (at worst orphans, which
        # ``manage.py check_storage --fix`` removes).
        if not committing:
            storage.delete_files(*written)
        raise
    except BaseException:
        storage.delete_files(*written)
        raise
    logger.info("Stored training image %s in workspace %s", image.id, workspace.id)
    return image


# --- single image -----------------------------------------------------------------------------------


def training_image_update(
    *,
    image: TrainingImage,
    meta_data: dict | None = None,
    test_image: bool | None = None,
    real: bool | None = None,
) -> TrainingImage:
    """Replace the meta data and/or set the test and real flags; fields given as None stay."""
    fields = []
    if meta_data is not None:
        image.meta_data = meta_data
        fields.append("meta_data")
    if test_image is not None:
        image.test_image = test_image
        fields.append("test_image")
    if real is not None:
        image.real = real
        fields.append("real")
    if fields:
        image.save(update_fields=fields)
    return image


def training_image_add_label(*, image: TrainingImage, label_id, value=None) -> ImageLabel:
    """Attach a label of the image's workspace (again: update its value); value labels need a value."""
    (label,) = labels_resolve(workspace=image.workspace, label_ids=[label_id])
    value = _check_value(label, value)
    image_label, _ = ImageLabel.objects.update_or_create(image=image, label=label, defaults={"value": value})
    return image_label


def training_image_remove_label(*, image: TrainingImage, label_id) -> None:
    """Detach a label of the image's workspace; detaching a label the image lacks is a no-op."""
    (label,) = labels_resolve(workspace=image.workspace, label_ids=[label_id])
    ImageLabel.objects.filter(image=image, label=label).delete()


def training_image_update_label(*, image: TrainingImage, label_id, value) -> ImageLabel:
    """Change the value of a value label already on the image."""
    (label,) = labels_resolve(workspace=image.workspace, label_ids=[label_id])
    value = _check_value(label, value)
    image_label = ImageLabel.objects.filter(image=image, label=label).first()
    if image_label is None:
        raise ImageInputError(MSG_LABEL_NOT_ON_IMAGE)
    image_label.value = value
    image_label.save(update_fields=["value"])
    return image_label


# --- bulk -------------------------------------------------------------------------------------------


@transaction.atomic
def training_image_bulk_update(
    *,
    workspace: Workspace,
    image_ids: Iterable = (),
    label_ids: Iterable = (),
    add_label_ids: Iterable = (),
    remove_label_ids: Iterable = (),
    test_image: bool | None = None,
    real: bool | None = None,
) -> int:
    """Update many images at once; return how many were selected.

    The images are the ``image_ids`` plus every image carrying one of ``label_ids``. Every id must
    belong to the workspace (404 otherwise, and nothing changes). Labels in ``add_label_ids`` are
    attached (value labels cannot be: they need a value per image), ``remove_label_ids`` detached,
    and the test/real flags set when not None.
    """
    image_uuids = {_as_uuid(image_id, ImageNotFoundError()) for image_id in image_ids}
    filter_labels = labels_resolve(workspace=workspace, label_ids=label_ids)
    add_labels = labels_resolve(workspace=workspace, label_ids=add_label_ids)
    remove_labels = labels_resolve(workspace=workspace, label_ids=remove_label_ids)
    for label in add_labels:
        _check_value(label, None)

    found = set(
        TrainingImage.objects.filter(workspace=workspace, id__in=image_uuids).values_list("id", flat=True)
    )
    if found != image_uuids:
        raise ImageNotFoundError()
    if filter_labels:
        found |= set(
            ImageLabel.objects.filter(image__workspace=workspace, label__in=filter_labels).values_list(
                "image_id", flat=True
            )
        )
    selected = TrainingImage.objects.filter(workspace=workspace, id__in=found)

    if remove_labels:
        ImageLabel.objects.filter(image__in=selected, label__in=remove_labels).delete()
    if add_labels:
        ImageLabel.objects.bulk_create(
            [ImageLabel(image_id=image_id, label=label) for image_id in found for label in add_labels],
            ignore_conflicts=True,
        )
    flags = {}
    if test_image is not None:
        flags["test_image"] = test_image
    if real is not None:
        flags["real"] = real
    if flags:
        selected.update(**flags)
    return len(found)


# --- deletion ---------------------------------------------------------------------------------------


def training_image_delete_many(*, queryset: QuerySet) -> int:
    """Delete the images of ``queryset`` (rows, labels) and, once committed, their files.

    Returns how many images were deleted. Callers scope the queryset (e.g. the images of a label
    being wiped); this function does not filter by workspace.
    """
    with transaction.atomic():
        rows = list(queryset.order_by().values_list("id", "workspace_id"))
        if not rows:
            return 0
        # The counters the delete triggers update, in the order an upload takes them (the
        # workspace's image count, then its labels): a wipe beside an upload never deadlocks.
        workspaces = sorted({row[1] for row in rows})
        list(
            ImageCount.objects.select_for_update()
            .filter(workspace_id__in=workspaces)
            .order_by("pk")
            .values_list("pk")
        )
        # The files go after the commit, with each row (apps/images/signals.py).
        TrainingImage.objects.filter(id__in=[row[0] for row in rows]).delete()
    return len(rows)


def training_image_delete(*, image: TrainingImage) -> None:
    """Delete one image and (after commit) its files."""
    training_image_delete_many(queryset=TrainingImage.objects.filter(pk=image.pk))


# --- upload sources ---------------------------------------------------------------------------------


def upload_bytes(*, file=None, base64: str | None = None, url: str | None = None) -> bytes:
    """The image bytes of an upload: exactly one of a file, base64 text or a URL to fetch."""
    given = [source for source in (file, base64, url) if source not in (None, "")]
    if not given:
        raise ImageInputError(MSG_NO_SOURCE)
    if len(given) > 1:
        raise ImageInputError(MSG_MANY_SOURCES)
    if file is not None:
        check_size(file.size or 0)  # refuse before reading a huge upload into memory
        file.seek(0)
        return file.read()
    if base64:
        return decode_base64(base64)
    return fetch_url(url)


# --- zip import -------------------------------------------------------------------------------------

MAX_ZIP_MEMBERS = 1000
MSG_BAD_ZIP = "The file is not a zip archive we can read."
MSG_ZIP_TOO_MANY = "The zip archive holds more than {limit} files."


def zip_limit() -> int:
    """Largest zip archive, and largest total of its images once unpacked (bytes)."""
    return 20 * max_image_bytes()


def training_image_import_zip(
    *, workspace: Workspace, file, label_ids: Iterable = (), test_image: bool = False, real: bool = False
) -> tuple[list[TrainingImage], list[dict]]:
    """Ingest every image of a zip archive (one archive per label, as AWS and IBM import classes).

    Returns the stored images and ``[{"name", "detail"}]`` for the members skipped (unreadable,
    duplicate, too large, past a quota: a workspace already full is refused with 403 before
    anything is unpacked). The archive is bounded before anything is unpacked: its size, its
    number of members and the unpacked total (zip bombs); each member is read with a limit, not
    trusting the sizes its header declares. Every image is its own transaction.
    """
    labels = labels_resolve(workspace=workspace, label_ids=label_ids)
    training_image_check_quota(workspace=workspace)  # a full workspace: refused before unpacking
    if (file.size or 0) > zip_limit():
        raise ImageTooLargeError(MSG_TOO_LARGE.format(limit=zip_limit()))
    try:
        archive = zipfile.ZipFile(file)
        members = [info for info in archive.infolist() if not info.is_dir() and not _zip_noise(info.filename)]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImageInputError(MSG_BAD_ZIP) from exc
    if len(members) > MAX_ZIP_MEMBERS:
        raise ImageInputError(MSG_ZIP_TOO_MANY.format(limit=MAX_ZIP_MEMBERS))

    images, skipped, unpacked = [], [], 0
    for info in members:
        try:
            if info.file_size > max_image_bytes() or unpacked + info.file_size > zip_limit():
                raise ImageTooLargeError(MSG_TOO_LARGE.format(limit=max_image_bytes()))
            with archive.open(info) as member:
                data = member.read(max_image_bytes() + 1)
            unpacked += len(data)
            check_size(len(data))
            images.append(
                training_image_ingest(
                    workspace=workspace,
                    data=data,
                    label_ids=[label.id for label in labels],
                    test_image=test_image,
                    real=real,
                )
            )
        except DomainError as exc:
            skipped.append({"name": info.filename, "detail": exc.message})
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError):
            skipped.append({"name": info.filename, "detail": MSG_BAD_ZIP})
    return images, skipped


def _zip_noise(filename: str) -> bool:
    """macOS resource forks and hidden files that archivers add next to the images."""
    return any(part.startswith((".", "__MACOSX")) for part in filename.split("/"))
