"""Just enough of OpenCV for the Ximilar client's image helpers, built on Pillow and numpy.

ximilar-client imports ``cv2`` lazily to read ``_url`` records and resize large ``_file`` ones,
but does not depend on it. opencv is a large wheel the service itself never needs, so when it is
not installed the client tests put this stand-in into ``sys.modules``; with the real OpenCV
installed, it is used instead.
"""

from __future__ import annotations

import io
import sys
import types

import numpy as np
from PIL import Image

IMREAD_COLOR = 1
COLOR_BGR2RGB = 4
COLOR_RGB2BGR = 4
IMWRITE_JPEG_QUALITY = 1


def imdecode(buffer, flags=IMREAD_COLOR):
    try:
        image = Image.open(io.BytesIO(np.asarray(buffer, dtype=np.uint8).tobytes())).convert("RGB")
    except OSError:
        return None
    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1])


def imread(path):
    with open(path, "rb") as handle:
        return imdecode(np.frombuffer(handle.read(), dtype=np.uint8))


def cvtColor(image, code):  # noqa: N802 - OpenCV's name
    return np.ascontiguousarray(image[:, :, ::-1])


def resize(image, size):
    return np.asarray(Image.fromarray(image).resize(tuple(size), Image.Resampling.BILINEAR))


def imencode(ext, image, params=None):
    quality = 95
    if params and IMWRITE_JPEG_QUALITY in params[::2]:
        quality = min(95, params[params.index(IMWRITE_JPEG_QUALITY) + 1])
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image[:, :, ::-1])).save(buffer, format="JPEG", quality=quality)
    return True, np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def install() -> None:
    try:
        import cv2  # noqa: F401
    except ImportError:
        module = types.ModuleType("cv2")
        module.__dict__.update(
            {
                name: value
                for name, value in globals().items()
                if name.isupper() or name[:2] in ("im", "cv", "re")
            }
        )
        sys.modules["cv2"] = module
