"""Turning untrusted bytes into a PIL image, shared by uploads and classify.

Every reader goes through ``open_image``: the format is one we accept, the pixel count is bounded
before anything is decoded (decompression bombs) and the whole first frame is decoded (truncated
files). EXIF orientation and RGB are ``ml.images.to_rgb``, the rule the model sees too.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from .errors import (
    MSG_BAD_BASE64,
    MSG_EMPTY,
    MSG_NOT_AN_IMAGE,
    MSG_TOO_LARGE,
    MSG_TOO_MANY_PIXELS,
    MSG_TRUNCATED,
    MSG_UNSUPPORTED_FORMAT,
    ImageInputError,
    ImageTooLargeError,
)

MSG_DECODER_BUSY = "The server is busy decoding other large images; try again shortly."
MSG_REQUEST_PIXELS = (
    "This request's images hold more than {limit} pixels in all; send fewer or smaller images."
)

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP"}
# Pillow only tries these decoders (``Image.open(formats=...)``): no other parser ever sees the bytes.
ALLOWED_FORMATS_ORDER = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
# 50 megapixels (e.g. 8660x5773) is more than any camera we expect and ~150 MB as RGB.
MAX_PIXELS = 50_000_000
# Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; we turn the warning into an
# error below, so this is the effective limit for every Image.open in the process.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Pillow allocates an image in blocks (16 MiB by default). glibc serves blocks under 32 MiB from
# per-thread arenas and keeps them when freed, so every classify thread that once decoded a huge
# image held on to it (a 1.7 GB peak above idle where 0.45 GB were needed). Blocks of 64 MiB are
# mapped and unmapped directly: a decoded image's memory goes back to the system when it is freed.
PILLOW_BLOCK_BYTES = 64 * 1024 * 1024
Image.core.set_block_size(PILLOW_BLOCK_BYTES)

_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)


def max_image_bytes() -> int:
    return settings.VF_MAX_IMAGE_BYTES


def check_size(size: int) -> None:
    if size > max_image_bytes():
        raise ImageTooLargeError(MSG_TOO_LARGE.format(limit=max_image_bytes()))


def decode_base64(value: str) -> bytes:
    """Decode base64 image data, bare or with a ``data:image/...;base64,`` prefix.

    Accepts the standard and the URL-safe alphabet, with or without padding and line breaks.
    Raises ``ImageInputError`` for anything else, ``ImageTooLargeError`` past the size limit.
    """
    if not isinstance(value, str):
        raise ImageInputError(MSG_BAD_BASE64)
    # str.split() drops the same whitespace as the regex \s+ (str.isspace), at a fifteenth of its
    # cost: ~1 ms of a 70 KB record under the GIL, 10 ms of a 10-record classify call.
    value = "".join(_DATA_URL.sub("", value.strip(), count=1).split())
    if not value:
        raise ImageInputError(MSG_EMPTY)
    # Refuse before decoding: 4 characters carry 3 bytes.
    check_size(len(value) * 3 // 4 - 2)
    value = value.replace("-", "+").replace("_", "/")
    value += "=" * (-len(value) % 4)
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageInputError(MSG_BAD_BASE64) from exc
    if not data:
        raise ImageInputError(MSG_EMPTY)
    check_size(len(data))
    return data


def open_image(data: bytes, *, load: bool = True) -> tuple[Image.Image, str]:
    """Open and fully decode ``data``; return the image (first frame) and its format.

    ``load=False`` stops after the header checks (format, size, pixel limit): classify lets the
    predictor decode the pixels itself, so that a large JPEG decodes at a reduced scale
    (``Image.draft``), which a full decode here would defeat.
    """
    if not data:
        raise ImageInputError(MSG_EMPTY)
    check_size(len(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS_ORDER)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageInputError(_too_many_pixels(exc)) from exc
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            other = _sniff_format(data)
            if other:
                raise ImageInputError(MSG_UNSUPPORTED_FORMAT.format(format=other)) from exc
            raise ImageInputError(MSG_NOT_AN_IMAGE) from exc
        image_format = image.format or ""
        if image_format not in ALLOWED_FORMATS:
            raise ImageInputError(MSG_UNSUPPORTED_FORMAT.format(format=image_format or "unknown"))
        width, height = image.size
        if width < 1 or height < 1 or width * height > MAX_PIXELS:
            raise ImageInputError(_too_many_pixels())
        if not load:
            return image, image_format
    decode(image)
    return image, image_format


def decode(image: Image.Image) -> Image.Image:
    """Decode the pixels of an image ``open_image(load=False)`` returned (the first frame of an
    animation), as ImageInputError when they are truncated or corrupt."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image.seek(0)  # GIF, animated WebP: the first frame
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageInputError(_too_many_pixels(exc)) from exc
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageInputError(MSG_TRUNCATED) from exc
    return image


class DecodeGate:
    """The pixels this process decodes at once, across all requests and threads.

    Decoding is where memory goes: a 160 KB PNG of 7,070 x 7,070 pixels becomes 150 MB as RGB, and
    ten of them in each of three concurrent calls took a web worker from 2.2 GB to 10 GB. Each
    decode holds its pixels here until its image is scaled down; past ``VF_DECODE_PIXELS_AT_ONCE``
    the next one waits (``VF_DECODE_WAIT_S``, then 503), so a process's peak stays near a few
    bytes per pixel of that budget however many requests arrive.
    """

    def __init__(self):
        self._lock = threading.Condition()
        self.in_use = 0

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        from apps.core.errors import ServiceUnavailableError

        limit = max(int(settings.VF_DECODE_PIXELS_AT_ONCE), 1)
        pixels = min(max(int(pixels), 1), limit)  # one image larger than the budget runs alone
        deadline = time.monotonic() + settings.VF_DECODE_WAIT_S
        with self._lock:
            while self.in_use + pixels > limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServiceUnavailableError(MSG_DECODER_BUSY)
                self._lock.wait(timeout=left)
            self.in_use += pixels
        try:
            yield
        finally:
            with self._lock:
                self.in_use -= pixels
                self._lock.notify_all()


DECODE_GATE = DecodeGate()


class RequestPixels:
    """The pixels one request may decode in all (``VF_MAX_REQUEST_PIXELS``), taken in order."""

    def __init__(self):
        self.limit = int(settings.VF_MAX_REQUEST_PIXELS)
        self.taken = 0

    def take(self, pixels: int) -> None:
        """Count ``pixels`` against the request; ImageTooLargeError (413) past the limit."""
        if self.taken + pixels > self.limit:
            raise ImageTooLargeError(MSG_REQUEST_PIXELS.format(limit=self.limit))
        self.taken += pixels


# Signatures of image formats we refuse, to name them in the error (no decoder of theirs runs).
_OTHER_FORMATS = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"icns", "ICNS"),
    (b"%PDF", "PDF"),
    (b"\x97JB2", "JBIG2"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG2000"),
    (b"\xffO\xffQ", "JPEG2000"),
)


def _sniff_format(data: bytes) -> str:
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        return "AVIF" if brand in (b"avif", b"avis") else "HEIC" if brand.startswith((b"hei", b"mif")) else ""
    return ""


def _too_many_pixels(exc: Exception | None = None) -> str:
    return MSG_TOO_MANY_PIXELS.format(limit=MAX_PIXELS)
