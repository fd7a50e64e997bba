"""A media volume with little free space, without root: Django's FileSystemStorage whose writes
stop with ENOSPC once ``FullDiskStorage.free_bytes`` are used up.

Like a real full disk, a write that does not fit writes what fits and then fails, leaving that
part of the file behind (Django's FileSystemStorage does not remove it). Reads and deletes are the
plain storage's. Configure it as ``STORAGES["default"]``; the free space is a class attribute, so
the test sets it wherever Django built the storage.
"""

from __future__ import annotations

import errno
import os

from django.core.files.base import File
from django.core.files.storage import FileSystemStorage


class _Filling(File):
    """The content being saved, in chunks, taking its bytes from the free space as it goes."""

    def __init__(self, content, path: str):
        super().__init__(content, name=getattr(content, "name", None))
        self.content = content
        self.path = path

    def chunks(self, chunk_size=None):
        for chunk in self.content.chunks(chunk_size):
            if len(chunk) > FullDiskStorage.free_bytes:
                part = chunk[: FullDiskStorage.free_bytes]
                FullDiskStorage.free_bytes = 0
                if part:
                    yield part
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
            FullDiskStorage.free_bytes -= len(chunk)
            yield chunk


class FullDiskStorage(FileSystemStorage):
    free_bytes: int = 1 << 40

    def _save(self, name, content):
        return super()._save(name, _Filling(content, self.path(name)))
