"""Detection scenes made of real food photos (``bench_quality.photos()``, allowed groups only).

Objects are crops of the photos of 5 food groups (the labels: cereals, pulses, roots, nuts, oils,
the groups with most photos); backgrounds, mosaic tiles and distractors come from the other
allowed groups (egg, poultry, meat, freshwater fish), never labelled.

Two kinds, both 384 x 288 px by default:

- ``easy``: one background photo, 1-3 objects of the first ``labels`` labels (2 by default),
  64-144 px on their longer side, rectangular, never overlapping.
- ``hard``: 5 labels, objects 24-160 px (log-uniform on the longer side, aspect 0.6-1.6), up to 5
  a scene, half of them with an elliptical mask; pasted on a sharp mosaic of 2x2 to 4x3 tiles of
  distractor photos, with 2-6 unlabelled distractor crops of the same sizes, and occlusion: a later
  object or distractor may cover an earlier object as long as each object keeps at least 60 % of
  its box visible (its box stays the whole crop).

Development and benchmark photos are kept apart by a fixed rule: within each food group, the
photos sorted by the SHA-256 of their bytes alternate ``bench``, ``dev``, ``bench``, ... (the
first goes to ``bench``). Design choices are made on ``half="dev"`` scenes (bench/dev_detection.py);
the benchmark (bench/bench_detection_photos.py, bench/bench_detection_api.py --photos) draws its
training and test scenes from ``half="bench"`` photos only (different crops, places and sizes of
the same photos in its training and test scenes: it measures detection in unseen scenes, not
recognition of unseen foods).
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))

LABEL_GROUPS = ("cereals", "pulses", "roots", "nuts", "oils")
SIZE = (384, 288)


@lru_cache(maxsize=1)
def _photo_pool() -> dict:
    """{half: {"labels": [[PIL images of label j]], "other": [PIL images]}} by the fixed rule."""
    import bench_quality

    data, y, names = bench_quality.photos()
    pool = {half: {"labels": [[] for _ in LABEL_GROUPS], "other": []} for half in ("bench", "dev")}
    for group in range(len(names)):
        members = sorted((hashlib.sha256(data[i]).hexdigest(), i) for i in np.flatnonzero(y == group))
        for rank, (_, i) in enumerate(members):
            half = "bench" if rank % 2 == 0 else "dev"
            image = Image.open(io.BytesIO(data[i])).convert("RGB")
            if names[group] in LABEL_GROUPS:
                pool[half]["labels"][LABEL_GROUPS.index(names[group])].append(image)
            else:
                pool[half]["other"].append(image)
    return pool


def _crop(rng: random.Random, photo: Image.Image, width: int, height: int) -> Image.Image:
    """A random window of ``photo`` with the aspect of width:height (at least 40 % of the photo's
    shorter side), resized to width x height."""
    pw, ph = photo.size
    aspect = width / height
    side = rng.uniform(0.4, 1.0)
    cw = min(pw, side * min(pw, ph * aspect))
    ch = cw / aspect
    if ch > ph:
        ch, cw = ph, ph * aspect
    x0, y0 = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
    window = photo.crop((round(x0), round(y0), round(x0 + cw), round(y0 + ch)))
    return window.resize((width, height), Image.Resampling.BILINEAR)


def _mosaic(rng: random.Random, others: list[Image.Image], width: int, height: int) -> Image.Image:
    cols, rows = rng.randint(2, 4), rng.randint(2, 3)
    canvas = Image.new("RGB", (width, height))
    xs = [round(width * i / cols) for i in range(cols + 1)]
    ys = [round(height * j / rows) for j in range(rows + 1)]
    for i in range(cols):
        for j in range(rows):
            tile = _crop(rng, rng.choice(others), xs[i + 1] - xs[i], ys[j + 1] - ys[j])
            canvas.paste(tile, (xs[i], ys[j]))
    return canvas


def _mask(rng: random.Random, width: int, height: int, ellipse: bool) -> Image.Image | None:
    if not ellipse:
        return None
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).ellipse([0, 0, width - 1, height - 1], fill=255)
    return mask.filter(ImageFilter.GaussianBlur(0.8))


def _size(rng: random.Random, low: int, high: int, aspect_range=(0.6, 1.6)) -> tuple[int, int]:
    longer = math.exp(rng.uniform(math.log(low), math.log(high)))
    aspect = rng.uniform(*aspect_range)
    w, h = (longer, longer / aspect) if aspect >= 1 else (longer * aspect, longer)
    return max(8, round(w)), max(8, round(h))


def easy_scene(rng: random.Random, pool: dict, labels: int, size=SIZE):
    width, height = size
    canvas = _crop(rng, rng.choice(pool["other"]), width, height)
    boxes, box_labels = [], []
    count = rng.randint(1, 3)
    for _ in range(100):
        if len(boxes) == count:
            break
        w, h = _size(rng, 64, 144, (0.75, 1.33))
        x, y = rng.randint(0, width - w), rng.randint(0, height - h)
        box = [x, y, x + w, y + h]
        if any(not (box[2] <= b[0] or b[2] <= box[0] or box[3] <= b[1] or b[3] <= box[1]) for b in boxes):
            continue
        label = rng.randrange(labels)
        canvas.paste(_crop(rng, rng.choice(pool["labels"][label]), w, h), (x, y))
        boxes.append(box)
        box_labels.append(label)
    return canvas, boxes, box_labels


def hard_scene(rng: random.Random, pool: dict, labels: int = 5, size=SIZE, max_objects: int = 5):
    width, height = size
    canvas = _mosaic(rng, pool["other"], width, height)
    owner = np.full((height, width), -1, dtype=np.int16)  # which object shows at each pixel
    areas: list[int] = []
    boxes, box_labels = [], []
    # Objects and distractors in a random order: a distractor pasted later occludes objects too.
    items = ["object"] * rng.randint(1, max_objects) + ["distractor"] * rng.randint(2, 6)
    rng.shuffle(items)
    for kind in items:
        for _ in range(30):
            w, h = _size(rng, 24, 160)
            if w >= width or h >= height:
                continue
            x, y = rng.randint(0, width - w), rng.randint(0, height - h)
            ellipse = rng.random() < 0.5
            trial = owner.copy()
            region = trial[y : y + h, x : x + w]
            if ellipse:
                yy, xx = np.mgrid[0:h, 0:w]
                inside = ((xx + 0.5 - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - h / 2) / (h / 2)) ** 2 <= 1
            else:
                inside = np.ones((h, w), dtype=bool)
            region[inside] = len(areas) if kind == "object" else -2
            if any((trial == k).sum() < 0.6 * area for k, area in enumerate(areas)):
                continue  # it would hide too much of an earlier object
            if kind == "object":
                label = rng.randrange(labels)
                patch = _crop(rng, rng.choice(pool["labels"][label]), w, h)
                areas.append(int(inside.sum()))
                boxes.append([x, y, x + w, y + h])
                box_labels.append(label)
            else:
                patch = _crop(rng, rng.choice(pool["other"]), w, h)
            canvas.paste(patch, (x, y), _mask(rng, w, h, ellipse))
            owner = trial
            break
    return canvas, boxes, box_labels


def scenes(
    n: int, kind: str = "hard", half: str = "bench", seed: int = 0, labels: int | None = None, size=SIZE
):
    """``n`` seeded scenes: [(PIL image, boxes [[x1, y1, x2, y2]], label indexes)]."""
    pool = _photo_pool()[half]
    rng = random.Random(f"{kind}:{half}:{seed}")
    if kind == "easy":
        return [easy_scene(rng, pool, labels or 2, size) for _ in range(n)]
    return [hard_scene(rng, pool, labels or len(LABEL_GROUPS), size) for _ in range(n)]


def label_names(kind: str = "hard", labels: int | None = None) -> list[str]:
    return list(LABEL_GROUPS[: labels or (2 if kind == "easy" else len(LABEL_GROUPS))])


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
