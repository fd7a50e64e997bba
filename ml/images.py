"""Images to model inputs with Pillow and numpy alone: open, orient, draft, resize, crop.

What training (ml/data.py, ml/detection) and serving share, so a saved version sees exactly what
its training saw. No torch here: the web process serves through ONNX Runtime and stores uploads
without ever importing it (docs/operations.md, "Memory bound per worker").
"""

from __future__ import annotations

import io
import pathlib

import numpy as np
from PIL import Image, ImageOps

ImageInput = str | pathlib.Path | bytes | Image.Image

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def open_image(image: ImageInput) -> Image.Image:
    """Open an image lazily (header only for files and bytes); PIL images pass through."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (bytes, bytearray, memoryview)):
        return Image.open(io.BytesIO(bytes(image)))
    if isinstance(image, (str, pathlib.Path)):
        return Image.open(image)
    raise TypeError(f"unsupported image type {type(image).__name__}")


def to_rgb(img: Image.Image) -> Image.Image:
    """The image upright (EXIF orientation applied) in RGB; transparent areas become white.

    Shared with the service's uploads and thumbnails (apps/images), so a picture looks the same
    to the model as in the stored copy. A broken EXIF block leaves the image as stored.
    """
    try:
        img = ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError, TypeError):
        pass
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        # Transparent areas become white rather than whatever colour hides under alpha.
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.getchannel("A"))
        return img
    return img.convert("RGB")


def draft(img: Image.Image, size: int) -> Image.Image:
    """Have a JPEG decoded at the smallest scale (1/2, 1/4, 1/8) that still covers ``size`` on
    both sides: up to 64x fewer pixels to decode, and quality unaffected. ``img.size`` is then what
    decoding will produce; other formats decode whole. Before ``load``; a second call does nothing."""
    if img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK"):
        img.draft("RGB", (size, size))
    return img


# How an image becomes a square input: "crop" resizes the shorter side and keeps the centre (the
# aspect ratio is kept, the margins of the longer side are lost); "squash" resizes the whole image
# to the square (nothing is lost, the aspect ratio is not kept).
RESIZE_MODES = ("crop", "squash")


def preprocess_array(
    image: ImageInput, size: int, interpolation: str = "bicubic", resize: str = "crop"
) -> np.ndarray:
    """Decode and resize one image to a (3, size, size) uint8 array.

    ``resize="crop"``: shorter side resized to ``size``, then a centre crop: the aspect ratio is
    kept and only the margins of the longer side are lost. ``"squash"``: the whole image resized
    to ``size`` x ``size`` (wide photos keep their sides). JPEGs are decoded at a reduced scale
    with ``Image.draft`` first (up to 8x less work on a large photo); EXIF orientation
    is applied so phone photos are upright.
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}")
    img = to_rgb(draft(open_image(image), size))
    if resize == "squash":
        if img.size != (size, size):
            img = img.resize((size, size), _RESAMPLE.get(interpolation, Image.Resampling.BICUBIC))
        return _channels_first(img)
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), _RESAMPLE.get(interpolation, Image.Resampling.BICUBIC))
    left, top = (nw - size) // 2, (nh - size) // 2
    if (nw, nh) != (size, size):
        img = img.crop((left, top, left + size, top + size))
    return _channels_first(img)


def _channels_first(img: Image.Image) -> np.ndarray:
    """An RGB image as a contiguous uint8 (3, H, W) array."""
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))


def original_size(image: ImageInput) -> tuple[int, int]:
    """(width, height) of the image upright (EXIF orientation applied), from its header."""
    img = open_image(image)
    width, height = img.size
    try:
        if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            return height, width
    except Exception:  # noqa: BLE001, S110  # nosec B110 - a broken EXIF block: the image is used as stored
        pass
    return width, height


def shrunk_array(image: ImageInput, longest: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The image upright in RGB, shrunk (never enlarged) so its longer side is at most ``longest``:
    a uint8 (3, H, W) array and the image's own upright (width, height), read before a JPEG is
    drafted (decoded at 1/2, 1/4 or 1/8 scale, which changes ``img.size``): a detector answers
    boxes in the frame of the image as it came, not of its draft."""
    img = open_image(image)
    size = original_size(img)
    if img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK"):
        img.draft("RGB", (longest, longest))
    img = to_rgb(img)
    scale = longest / max(img.size)
    if scale < 1.0:
        img = img.resize(
            (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))),
            Image.Resampling.BILINEAR,
        )
    return _channels_first(img), size
