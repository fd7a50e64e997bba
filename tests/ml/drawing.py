"""Images the ML tests draw themselves: colours, shapes, stripes, brightness."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 220)}


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
