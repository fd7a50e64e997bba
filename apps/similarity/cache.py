"""A per-process cache of similarity indexes, one per version, kept current from the database.

The descriptors are rows (apps/similarity/models.py), so every process and machine builds the
same index from them. An entry is keyed by the version and stamped with the rows' generation
(largest row id, row count), read on every search: rows added since (uploads described after the
run) are added to the cached index; any other change (images deleted) rebuilds it from the rows.
Concurrent searches share an entry; a build happens once at a time per version.

An approximate index (from ``similarity.EXACT_BELOW`` descriptors on) takes seconds to build, so
the one built last is kept in the media storage (``similarity/<version id>/<top>-<count>.faiss``,
every machine sees it): a process starting cold reads it and adds the rows written since, instead
of building again. The descriptor job builds and stores it when it finishes, so the first search
of a web process does not pay for the build.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from ml import similarity

from . import selectors

logger = logging.getLogger(__name__)


@dataclass
class Entry:
    """A version's index and the image id of each of its rows."""

    index: similarity.Index | None
    image_of: dict = field(default_factory=dict)
    top: int = 0
    count: int = 0  # the version's rows when the entry was last brought up to date
    ghosts: int = 0  # vectors of rows deleted since (their images are left out of answers)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple]]:
        """For each vector, up to ``k`` ``(image id, cosine distance)`` nearest first."""
        if self.index is None or not len(vectors):
            return [[] for _ in range(len(vectors))]
        with self.lock:  # faiss adds are not safe beside searches of the same index
            ids, distances = self.index.search(vectors, k)
        return [
            [
                (self.image_of[int(i)], float(d))
                for i, d in zip(row_ids, row_d, strict=True)
                if int(i) in self.image_of  # -1 pads a short row; a ghost read from storage has no image
            ]
            for row_ids, row_d in zip(ids, distances, strict=True)
        ]


GHOSTS_KEPT = 0.1  # deleted rows an index keeps (a share of its rows) before it is rebuilt
_ENTRIES: OrderedDict = OrderedDict()
_LOCK = threading.Lock()
_BUILD_LOCKS: dict = {}
builds = 0  # how many full builds this process made (tests)


def _folder(version_id) -> str:
    return f"similarity/{version_id}"


def _stored(version_id, top: int) -> Entry | None:
    """The stored index with the largest generation at or under ``top`` whose rows are all still
    there (None when there is none, or it cannot be read)."""
    try:
        names = default_storage.listdir(_folder(version_id))[1]
    except (FileNotFoundError, OSError, NotImplementedError):
        return None
    found = []
    for name in names:
        stem, _, ext = name.partition(".")
        parts = stem.split("-")
        if ext == "faiss" and len(parts) == 2 and all(p.isdigit() for p in parts):
            found.append((int(parts[0]), int(parts[1]), name))
    for stored_top, stored_count, name in sorted(found, reverse=True):
        if stored_top > top:
            continue
        ids, images = selectors.descriptor_ids(version_id=version_id, up_to=stored_top)
        if len(ids) > stored_count or stored_count - len(ids) > GHOSTS_KEPT * max(len(ids), 1):
            continue
        try:
            with default_storage.open(f"{_folder(version_id)}/{name}", "rb") as handle:
                index = similarity.loads(handle.read())
        except Exception:  # noqa: BLE001 - an unreadable file is rebuilt from the rows
            logger.exception("similarity index %s of version %s cannot be read", name, version_id)
            return None
        if index.size != stored_count:
            return None
        # Rows of the file deleted since are ghosts: their ids map to no image, answers skip them.
        return Entry(
            index=index,
            image_of=dict(zip(ids.tolist(), images, strict=True)),
            top=stored_top,
            count=len(ids),
            ghosts=stored_count - len(ids),
        )
    return None


def _store(version_id, entry: Entry) -> None:
    """Keep an approximate index in the media storage (the others of the version go)."""
    if entry.index is None or entry.index.exact:
        return
    folder, name = _folder(version_id), f"{entry.top}-{entry.count}.faiss"
    try:
        if not default_storage.exists(f"{folder}/{name}"):
            default_storage.save(f"{folder}/{name}", ContentFile(similarity.dumps(entry.index)))
        for old in default_storage.listdir(folder)[1]:
            if old != name:
                default_storage.delete(f"{folder}/{old}")
    except Exception:  # noqa: BLE001 - a process that cannot store it still answers from memory
        logger.exception("could not store the similarity index of version %s", version_id)


def _build(version_id) -> Entry:
    global builds
    started = time.perf_counter()
    top, count = selectors.descriptor_generation(version_id=version_id)
    ids, images, vectors = selectors.descriptor_rows(version_id=version_id)
    entry = Entry(index=similarity.build_index(ids, vectors) if len(ids) else None)
    entry.image_of = dict(zip(ids.tolist(), images, strict=True))
    entry.top, entry.count = (int(ids[-1]), len(ids)) if len(ids) else (top, count)
    builds += 1
    _store(version_id, entry)
    logger.info(
        "similarity index of version %s: %d descriptors in %.2f s",
        version_id,
        len(ids),
        time.perf_counter() - started,
    )
    return entry


def _catch_up(entry: Entry, version_id, top: int, count: int) -> bool:
    """Add the rows written since ``entry`` was built; False when only a rebuild will do."""
    if top < entry.top or entry.index is None:
        return False
    ids, images, vectors = selectors.descriptor_rows(version_id=version_id, after_id=entry.top)
    # Rows deleted since stay in the index as ghosts, which answers leave out (their images are
    # gone), until they are a tenth of it: a deletion never makes a request rebuild the index.
    ghosts = entry.ghosts + entry.count + len(ids) - count
    if ghosts < 0 or ghosts > GHOSTS_KEPT * max(count, 1):
        return False
    with entry.lock:
        entry.index.add(ids, vectors)
        entry.image_of.update(zip(ids.tolist(), images, strict=True))
        entry.top, entry.count, entry.ghosts = max(top, entry.top), count, ghosts
    return True


def index_get(version_id) -> Entry:
    """The current index of a version's descriptors (built, caught up or rebuilt as needed)."""
    key = str(version_id)
    with _LOCK:
        build_lock = _BUILD_LOCKS.setdefault(key, threading.Lock())
    with build_lock:
        top, count = selectors.descriptor_generation(version_id=version_id)
        with _LOCK:
            entry = _ENTRIES.get(key)
            if entry is not None:
                _ENTRIES.move_to_end(key)
        if entry is not None and (entry.top, entry.count) == (top, count):
            return entry
        if entry is None and count >= similarity.EXACT_BELOW:
            entry = _stored(version_id, top)
            if entry is not None and (entry.top, entry.count) != (top, count):
                if not _catch_up(entry, version_id, top, count):
                    entry = None
        elif entry is not None and not _catch_up(entry, version_id, top, count):
            entry = None
        if entry is None:
            entry = _build(version_id)
        with _LOCK:
            _ENTRIES[key] = entry
            _ENTRIES.move_to_end(key)
            while len(_ENTRIES) > max(1, settings.VF_SIMILARITY_CACHE_SIZE):
                _ENTRIES.popitem(last=False)
        return entry


def clear() -> None:
    """Forget every index (tests)."""
    with _LOCK:
        _ENTRIES.clear()
