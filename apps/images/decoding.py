"""Turning untrusted bytes into a PIL image, shared by uploads and classify.

Every reader goes through ``open_image``: the format is one we accept, the pixel count is bounded
before anything is decoded (decompression bombs) and the whole first frame is decoded (truncated
files). EXIF orientation and RGB are ``ml.data.to_rgb``, the rule the model sees too.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

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

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP"}
# 50 megapixels (e.g. 8660x5773) is more than any camera we expect and ~150 MB as RGB.
MAX_PIXELS = 50_000_000
# Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; we turn the warning into an
# error below, so this is the effective limit for every Image.open in the process.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


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
    value = _WHITESPACE.sub("", _DATA_URL.sub("", value.strip(), count=1))
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
            image = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageInputError(_too_many_pixels(exc)) from exc
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise ImageInputError(MSG_NOT_AN_IMAGE) from exc
        image_format = image.format or ""
        if image_format not in ALLOWED_FORMATS:
            raise ImageInputError(MSG_UNSUPPORTED_FORMAT.format(format=image_format or "unknown"))
        width, height = image.size
        if width < 1 or height < 1 or width * height > MAX_PIXELS:
            raise ImageInputError(_too_many_pixels())
        if not load:
            return image, image_format
        try:
            image.seek(0)  # GIF, animated WebP: the first frame
            image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageInputError(_too_many_pixels(exc)) from exc
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageInputError(MSG_TRUNCATED) from exc
    return image, image_format


def _too_many_pixels(exc: Exception | None = None) -> str:
    return MSG_TOO_MANY_PIXELS.format(limit=MAX_PIXELS)
