"""Synthetic detection scenes drawn at test time, seeded: coloured squares and discs on noise."""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("square", "disc")  # label 0 is a red square, label 1 a blue disc
COLOURS = {"square": (220, 40, 40), "disc": (40, 60, 220)}


def scene(rng: random.Random, width: int, height: int, count: int | None = None):
    """One scene: (PIL image, boxes [[x1, y1, x2, y2]], label indexes); objects do not overlap."""
    noise = np.random.default_rng(rng.randrange(2**32)).integers(
        90, 170, size=(height, width, 3), dtype=np.uint8
    )
    image = Image.fromarray(noise, "RGB")
    draw = ImageDraw.Draw(image)
    boxes, labels = [], []
    count = rng.randint(1, 3) if count is None else count
    for _ in range(50):
        if len(boxes) == count:
            break
        side = rng.randint(min(width, height) // 5, min(width, height) // 3)
        x1, y1 = rng.randint(0, width - side), rng.randint(0, height - side)
        box = [x1, y1, x1 + side, y1 + side]
        if any(not (box[2] <= b[0] or b[2] <= box[0] or box[3] <= b[1] or b[3] <= box[1]) for b in boxes):
            continue
        label = rng.randrange(len(SHAPES))
        shape = SHAPES[label]
        if shape == "square":
            draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=COLOURS[shape])
        else:
            draw.ellipse([box[0], box[1], box[2] - 1, box[3] - 1], fill=COLOURS[shape])
        boxes.append(box)
        labels.append(label)
    return image, boxes, labels


def scenes(n: int, seed: int = 0, size: tuple[int, int] = (96, 80)):
    rng = random.Random(seed)
    return [scene(rng, *size) for _ in range(n)]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
