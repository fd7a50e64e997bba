"""Backups and restores of the whole install, and the storage check.

A backup is one tar archive:

* ``manifest.json``: the format, when and from which database engine it was taken, the rows per
  model, and every file with its size and SHA-256 (the database dump included);
* ``database.json``: every row in Django's portable serialization (the format of ``dumpdata``,
  loaded with ``loaddata``), so a backup of SQLite restores onto PostgreSQL: the way up from the
  embedded default;
* ``files/<storage name>``: every stored file a row names (training images, thumbnails, model
  artifacts), read through the default storage, local or S3.

Consistency while the service runs: the rows are read in one transaction (a snapshot), the files
they name are copied while it lasts, and an image or version whose file vanished meanwhile (deleted
after the snapshot) is left out with the rows that hang on it. So the archive never holds a row
without its file; an upload that commits after the snapshot is not in it, as in any snapshot.

A restore goes onto an empty install (migrated, no users or workspaces): it checks the whole
archive against its manifest before it writes anything, refuses a damaged one naming what is
wrong, then writes the files and loads the rows in one transaction, removing the files again if
the rows fail.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.core import serializers
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection, transaction

from apps.core.errors import DomainError
from apps.detection.models import DetectionObject, NegativeImage, ObjectLabel
from apps.images.models import ImageLabel, TrainingImage
from apps.training.models import ModelVersion

from . import selectors

logger = logging.getLogger(__name__)

FORMAT = "visionforge-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "database.json"
FILES = "files/"
CHUNK = 1 << 20

MSG_NOT_AN_ARCHIVE = "{path} is not a backup archive: {reason}"
MSG_DAMAGED = "The archive is damaged: {reason}. Nothing was restored."
MSG_NOT_EMPTY = (
    "This install is not empty ({what}). Restore onto a fresh install: a new database with "
    "`manage.py migrate` run and an empty media storage."
)
MSG_NEWER_FORMAT = "The archive is format {found}; this version reads format {expected}."

Progress = Callable[[str], None]


class BackupError(DomainError):
    """A backup or restore that cannot go on; the message says why."""


@dataclass
class BackupSummary:
    path: Path
    rows: dict[str, int]
    files: int
    bytes: int
    skipped: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0


def _silent(_: str) -> None:
    return None


def _sha256_of(fileobj) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := fileobj.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _snapshot(outermost: bool) -> None:
    """Make the open transaction one consistent snapshot of every table it reads.

    PostgreSQL: REPEATABLE READ, set before the first query. SQLite: a read transaction (in WAL
    mode) sees the database as it was at its first read; the first read is made here. Inside a
    caller's transaction (a test's) the caller's isolation stands."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and outermost:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    TrainingImage.objects.exists()


def _add_stored_file(archive: tarfile.TarFile, name: str, files: list[dict]) -> bool:
    """Copy one stored file into the archive; False when storage no longer has it."""
    try:
        source = default_storage.open(name, "rb")
    except FileNotFoundError:
        return False
    except OSError as exc:  # S3 answers a missing key with its own error types
        if "not found" in str(exc).lower() or "nosuchkey" in str(exc).lower() or "404" in str(exc):
            return False
        raise
    with source, tempfile.SpooledTemporaryFile(max_size=16 * CHUNK) as spool:
        digest, size = hashlib.sha256(), 0
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            spool.write(chunk)
        spool.seek(0)
        info = tarfile.TarInfo(FILES + name)
        info.size, info.mtime, info.mode = size, int(time.time()), 0o644
        archive.addfile(info, spool)
    files.append({"name": name, "size": size, "sha256": digest.hexdigest()})
    return True


def _copy_files(archive: tarfile.TarFile, progress: Progress) -> tuple[list[dict], set[str], set[str]]:
    """Copy every file the snapshot's rows name; return (files, image ids, version ids) whose
    files are gone (deleted after the snapshot was taken). The files of a row that is left out
    and were copied before the loss showed (an image's thumbnail, say) stay in the archive
    marked ``left_out``, and a restore skips them."""
    files: list[dict] = []
    gone_images: set[str] = set()
    gone_versions: set[str] = set()

    def copy_all(names: list[str]) -> bool:
        first = len(files)
        complete = all([_add_stored_file(archive, name, files) for name in names if name])
        if not complete:
            for entry in files[first:]:
                entry["left_out"] = True
        return complete

    images = list(selectors.image_files())
    for done, (image_id, file, thumbnail) in enumerate(images, start=1):
        if not copy_all([file, thumbnail]):
            gone_images.add(image_id)
        if done % 500 == 0 or done == len(images):
            progress(f"images: {done} of {len(images)} copied")
    by_version: dict[str, list[str]] = {}
    for version_id, name in selectors.artifact_files():
        by_version.setdefault(version_id, []).append(name)
    for version_id, names in by_version.items():
        if not copy_all(names):
            gone_versions.add(version_id)
    progress(f"model versions: {len(by_version) - len(gone_versions)} copied")
    return files, gone_images, gone_versions


def _rows(model, gone_images: set[str], gone_versions: set[str]):
    """The model's rows for the dump, without those that hang on a file that is gone."""
    rows = model._default_manager.order_by("pk")
    if model is TrainingImage and gone_images:
        rows = rows.exclude(pk__in=gone_images)
    elif model in (ImageLabel, DetectionObject, NegativeImage) and gone_images:
        rows = rows.exclude(image_id__in=gone_images)
    elif model is ObjectLabel and gone_images:
        rows = rows.exclude(object__image_id__in=gone_images)
    elif model is ModelVersion and gone_versions:
        rows = rows.exclude(pk__in=gone_versions)
    return rows


def _dump(target: Path, gone_images: set[str], gone_versions: set[str], progress: Progress) -> dict[str, int]:
    """Write every backed-up row to ``target`` in Django's JSON serialization; return the counts."""
    counts: dict[str, int] = {}
    serializer = serializers.get_serializer("json")()
    with target.open("w", encoding="utf-8") as out:
        out.write("[\n")
        first = True
        for model in selectors.backed_up_models():
            rows = _rows(model, gone_images, gone_versions)
            n = 0
            for obj in rows.iterator(chunk_size=2000):
                text = (
                    serializer.serialize([obj], use_natural_foreign_keys=True, use_natural_primary_keys=False)
                    .strip()[1:-1]
                    .strip()
                )
                out.write(("" if first else ",\n") + text)
                first = False
                n += 1
            counts[model._meta.label_lower] = n
            progress(f"rows: {model._meta.label_lower} {n}")
        out.write("\n]\n")
    return counts


def backup_create(*, path: str | Path, progress: Progress = _silent) -> BackupSummary:
    """Write a backup of the whole install (rows and stored files) to the archive ``path``
    (gzip-compressed when it ends in ``.gz`` or ``.tgz``; images are compressed already, so plain
    tar is the faster default). Written under a ``.partial`` name, renamed when complete."""
    started = time.monotonic()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    mode = "w:gz" if path.name.endswith((".gz", ".tgz")) else "w"
    try:
        with tempfile.TemporaryDirectory(prefix="vf-backup-") as work, tarfile.open(partial, mode) as archive:
            dump = Path(work) / DATABASE
            outermost = not connection.in_atomic_block
            with transaction.atomic():
                _snapshot(outermost)
                files, gone_images, gone_versions = _copy_files(archive, progress)
                counts = _dump(dump, gone_images, gone_versions, progress)
            with dump.open("rb") as fh:
                dump_sha, dump_size = _sha256_of(fh)
            archive.add(dump, arcname=DATABASE)
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "database_engine": connection.vendor,
                "rows": counts,
                "database": {"name": DATABASE, "size": dump_size, "sha256": dump_sha},
                "files": files,
                "left_out": {"images": sorted(gone_images), "versions": sorted(gone_versions)},
            }
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            archive.addfile(info, io.BytesIO(data))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    summary = BackupSummary(
        path=path,
        rows=counts,
        files=len(files),
        bytes=path.stat().st_size,
        skipped={"images": sorted(gone_images), "versions": sorted(gone_versions)},
        seconds=time.monotonic() - started,
    )
    progress(f"backup written: {path} ({summary.files} files, {summary.bytes:,} bytes)")
    return summary


# --------------------------------------------------------------------------------------- restore


def _safe_name(name: str) -> bool:
    """A stored file's name from an archive: under one of the install's folders, never outside."""
    parts = name.split("/")
    return (
        bool(name)
        and not name.startswith("/")
        and parts[0] in selectors.STORED_ROOTS
        and all(part not in ("", ".", "..") for part in parts)
        and "\\" not in name
    )


def _verify(path: Path, progress: Progress) -> dict:
    """Read the whole archive once: its manifest, and every member's SHA-256 against it.
    Raises BackupError naming the first thing that is wrong; writes nothing."""
    seen: dict[str, tuple[str, int]] = {}
    manifest = None
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if not member.isfile():
                    raise BackupError(MSG_DAMAGED.format(reason=f"{member.name} is not a file"))
                fileobj = archive.extractfile(member)
                if member.name == MANIFEST:
                    manifest = json.loads(fileobj.read().decode())
                    continue
                seen[member.name] = _sha256_of(fileobj)
                if len(seen) % 1000 == 0:
                    progress(f"checked {len(seen)} files")
    except FileNotFoundError as exc:
        raise BackupError(MSG_NOT_AN_ARCHIVE.format(path=path, reason="no such file")) from exc
    except (tarfile.TarError, EOFError, OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackupError(MSG_DAMAGED.format(reason=f"it cannot be read ({exc})")) from exc
    if manifest is None and any(name.startswith(FILES) or name == DATABASE for name in seen):
        raise BackupError(MSG_DAMAGED.format(reason=f"{MANIFEST} is missing (the archive ends early)"))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(MSG_NOT_AN_ARCHIVE.format(path=path, reason=f"no {MANIFEST} of a {FORMAT}"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            MSG_NEWER_FORMAT.format(found=manifest.get("format_version"), expected=FORMAT_VERSION)
        )
    expected = {FILES + f["name"]: (f["sha256"], f["size"]) for f in manifest["files"]}
    expected[DATABASE] = (manifest["database"]["sha256"], manifest["database"]["size"])
    for name, (sha, size) in expected.items():
        if name not in seen:
            raise BackupError(MSG_DAMAGED.format(reason=f"{name} is missing"))
        if seen[name] != (sha, size):
            raise BackupError(MSG_DAMAGED.format(reason=f"{name} does not match its SHA-256 in the manifest"))
    extra = sorted(set(seen) - set(expected))
    if extra:
        raise BackupError(MSG_DAMAGED.format(reason=f"{extra[0]} is not in the manifest"))
    unsafe = [name for name in expected if name != DATABASE and not _safe_name(name[len(FILES) :])]
    if unsafe:
        raise BackupError(
            MSG_DAMAGED.format(reason=f"{unsafe[0]} names a file outside the install's folders")
        )
    progress(f"archive checked: {len(manifest['files'])} files and the database match the manifest")
    return manifest


def _ensure_empty() -> None:
    """Refuse unless no backed-up model holds a row (migrate makes none of them) and the media
    storage holds nothing: loading onto rows would merge two installs, or clash on their ids."""
    found = [
        f"{model._meta.verbose_name_plural}: {model._default_manager.count()}"
        for model in selectors.backed_up_models()
        if model._default_manager.exists()
    ]
    for root in selectors.STORED_ROOTS:
        if next(selectors.stored_names(root), None) is not None:
            found.append(f"files under {root}/ in the media storage")
    if found:
        raise BackupError(MSG_NOT_EMPTY.format(what=", ".join(found)))


def _write_files(path: Path, manifest: dict, progress: Progress, written: list[str]) -> None:
    left_out = {FILES + f["name"] for f in manifest["files"] if f.get("left_out")}
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            if not member.name.startswith(FILES) or member.name in left_out:
                continue
            name = member.name[len(FILES) :]
            saved = default_storage.save(
                name, File(archive.extractfile(member), name=name.rsplit("/", 1)[-1])
            )
            written.append(saved)
            if saved != name:
                raise BackupError(f"The storage saved {name} as {saved}; restore onto an empty storage.")
            if len(written) % 1000 == 0:
                progress(f"files: {len(written)} written")


def _load_rows(path: Path, manifest: dict, progress: Progress) -> dict[str, int]:
    with tempfile.TemporaryDirectory(prefix="vf-restore-") as work:
        with tarfile.open(path, "r:*") as archive:
            member = archive.getmember(DATABASE)
            target = Path(work) / DATABASE
            with archive.extractfile(member) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
        progress("rows: loading")
        with transaction.atomic():
            call_command("loaddata", str(target), verbosity=0)
            counts = {
                model._meta.label_lower: model._default_manager.count()
                for model in selectors.backed_up_models()
            }
            for label, expected in manifest["rows"].items():
                if label in counts and counts[label] != expected:
                    raise BackupError(
                        MSG_DAMAGED.format(
                            reason=f"{label} has {counts[label]} rows after loading, not {expected}"
                        )
                    )
    return counts


def backup_restore(*, path: str | Path, progress: Progress = _silent) -> dict[str, int]:
    """Restore the archive ``path`` onto this empty install; return the rows per model."""
    path = Path(path)
    manifest = _verify(path, progress)
    _ensure_empty()
    written: list[str] = []
    try:
        _write_files(path, manifest, progress, written)
        progress(f"files: {len(written)} written")
        counts = _load_rows(path, manifest, progress)
    except BaseException:
        for name in written:  # the rows did not load: leave the storage as it was
            default_storage.delete(name)
        raise
    progress(f"restored: {sum(counts.values())} rows, {len(written)} files")
    return counts


# ----------------------------------------------------------------------------- storage check


@dataclass
class StorageReport:
    """Files no row names (``orphan_files``) and rows whose file storage lacks (``missing``)."""

    orphan_files: list[str]
    missing: list[dict]
    checked_files: int
    fixed: bool = False

    @property
    def clean(self) -> bool:
        return not self.orphan_files and not self.missing


def storage_check(
    *, fix: bool = False, min_age: float = 3600.0, progress: Progress = _silent
) -> StorageReport:
    """Compare the rows with the stored files, both ways.

    A file no row names counts as an orphan once it is ``min_age`` seconds old: an upload stores its
    file just before its row commits, and must not be mistaken for debris. With ``fix``, orphan
    files are deleted and images whose file (or thumbnail) is gone are marked ``file_missing`` (for
    an operator to upload again or delete; the trainer skips an unreadable image with a warning);
    versions whose model files are gone are reported, not changed."""
    named: dict[str, tuple[str, str]] = {}
    for image_id, file, thumbnail in selectors.image_files():
        named[file] = ("image", image_id)
        if thumbnail:
            named[thumbnail] = ("thumbnail", image_id)
    for version_id, name in selectors.artifact_files():
        named[name] = ("model", version_id)
    stored: set[str] = set()
    for root in selectors.STORED_ROOTS:
        stored.update(selectors.stored_names(root))
    progress(f"{len(named)} files named by rows, {len(stored)} stored")
    now = time.time()
    orphans = []
    for name in sorted(stored - set(named)):
        try:
            age = now - default_storage.get_modified_time(name).timestamp()
        except (NotImplementedError, OSError):
            age = min_age
        if age >= min_age:
            orphans.append(name)
    missing = [
        {"kind": kind, "id": owner, "name": name}
        for name, (kind, owner) in sorted(named.items())
        if name not in stored
    ]
    report = StorageReport(orphan_files=orphans, missing=missing, checked_files=len(stored))
    if fix:
        for name in orphans:
            default_storage.delete(name)
        gone = {m["id"] for m in missing if m["kind"] in ("image", "thumbnail")}
        if gone:
            TrainingImage.objects.filter(pk__in=gone).update(file_missing=True)
        report.fixed = True
        progress(f"fixed: {len(orphans)} orphan files deleted, {len(gone)} images marked file_missing")
    return report
