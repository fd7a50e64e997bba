"""Images the tests draw themselves: uploads (and a few hostile files), learnable data sets for
the training and classify tests, and shapes for the ml/ tests. One module for every test."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw

# --------------------------------------------------------------------------- uploads


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


# --------------------------------------------------------------------------- learnable sets (bytes)

SIZE = 32
# One colour per label of the training tests' multi_class tasks.
COLOURS = [(210, 40, 40), (40, 60, 210), (40, 190, 60), (220, 200, 40)]


def png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def solid(
    colour, rng: np.random.Generator, *, size: int = SIZE, noise: float = 20, fmt: str = "PNG"
) -> bytes:
    """A noisy solid colour: unique bytes every call, trivially separable by colour."""
    return png(np.asarray(colour, dtype=float)[None, None, :] + rng.normal(0, noise, (size, size, 3)), fmt)


def halves(left: bool, right: bool, rng: np.random.Generator, *, noise: float = 15) -> bytes:
    """Grey picture with a red left half (tag 0) and/or a blue right half (tag 1)."""
    pixels = np.full((SIZE, SIZE, 3), 128.0) + rng.normal(0, noise, (SIZE, SIZE, 3))
    if left:
        pixels[:, : SIZE // 2] = (220, 30, 30) + rng.normal(0, noise, (SIZE, SIZE // 2, 3))
    if right:
        pixels[:, SIZE // 2 :] = (30, 30, 220) + rng.normal(0, noise, (SIZE, SIZE // 2, 3))
    return png(pixels)


def brightness(value: float, rng: np.random.Generator, *, noise: float = 6) -> bytes:
    """Brightness ``value`` in [0, 1]: the regression target."""
    return png(np.full((SIZE, SIZE, 3), 30 + 200 * value) + rng.normal(0, noise, (SIZE, SIZE, 3)))


# --------------------------------------------------------------------------- shapes (PIL, for ml/)
# Named colours of the ml/ tests' classes.
SHAPE_COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 220)}


def jitter(rgb, rng, amount=30):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def coloured_shape(rgb, rng, size=40) -> Image.Image:
    """A shape of the class colour on a light random background, at a random place."""
    img = Image.new("RGB", (size, size), jitter((200, 200, 200), rng, 40))
    draw = ImageDraw.Draw(img)
    s = int(rng.integers(size // 2, size - 4))
    x, y = (int(v) for v in rng.integers(0, size - s, size=2))
    shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
    shape((x, y, x + s, y + s), fill=jitter(rgb, rng))
    return img


def stripes_and_dot(has_stripes: bool, has_dot: bool, rng, size=40) -> Image.Image:
    """Two independent features: dark diagonal stripes, a red dot. Either, both or none."""
    img = Image.new("RGB", (size, size), jitter((230, 230, 230), rng, 20))
    draw = ImageDraw.Draw(img)
    if has_stripes:
        offset = int(rng.integers(0, 8))
        for k in range(-size, 2 * size, 8):
            draw.line((k + offset, 0, k + offset - size, size), fill=(30, 30, 30), width=3)
    if has_dot:
        r = int(rng.integers(6, 10))
        x, y = (int(v) for v in rng.integers(r, size - r, size=2))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=jitter((220, 30, 30), rng, 20))
    return img


def grey(level: float, rng, size=32) -> Image.Image:
    """A flat grey image of brightness ``level`` in [0, 1], with pixel noise."""
    noise = rng.normal(0, 6, size=(size, size, 1))
    pixels = np.clip(level * 255 + noise, 0, 255).repeat(3, axis=2).astype(np.uint8)
    return Image.fromarray(pixels)


def glyph(mirrored: bool, rng, size=32) -> Image.Image:
    """A grey 'F'-like glyph, or its mirror image: told apart only by its orientation."""
    img = Image.new("L", (size, size), int(rng.integers(200, 256)))
    draw = ImageDraw.Draw(img)
    s = int(rng.integers(size * 5 // 10, size * 8 // 10))
    x, y = (int(v) for v in rng.integers(0, size - s + 1, size=2))
    w = max(2, s // 5)
    ink = int(rng.integers(0, 60))
    draw.rectangle((x, y, x + w, y + s), fill=ink)  # the stem
    draw.rectangle((x, y, x + s * 3 // 4, y + w), fill=ink)  # the top arm
    draw.rectangle((x, y + s // 2 - w // 2, x + s // 2, y + s // 2 + w // 2), fill=ink)  # the middle arm
    if mirrored:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img.convert("RGB")


def shape_on_colour(kind: int, rng, size=96) -> Image.Image:
    """A circle (0) or a square (1) of a random colour on a random background: colour says nothing."""
    img = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    s = int(rng.integers(size // 3, size * 3 // 4))
    x, y = (int(v) for v in rng.integers(0, size - s, size=2))
    (draw.ellipse if kind == 0 else draw.rectangle)(
        (x, y, x + s, y + s), fill=tuple(int(c) for c in rng.integers(0, 256, 3))
    )
    return img
