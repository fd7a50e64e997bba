"""Images the tests draw themselves, and a few hostile ones."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def picture(size=(64, 48), color=(200, 30, 30), fmt="JPEG", **save) -> bytes:
    image = Image.new("RGB", size, color)
    # A diagonal stripe so different colours/sizes give different bytes and orientation is visible.
    for i in range(min(size)):
        image.putpixel((i, i), (255 - color[0], 255 - color[1], 255 - color[2]))
    buffer = io.BytesIO()
    if fmt == "GIF":
        frames = [image, Image.new("RGB", size, (0, 0, 255))]
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    else:
        image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def jpeg_with_orientation(size=(80, 40), orientation=6) -> bytes:
    """A landscape JPEG whose EXIF says 'rotate 90°' (orientation 6): it displays as portrait."""
    image = Image.new("RGB", size, (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels in a few dozen bytes (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]
