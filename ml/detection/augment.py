"""Augmentation that puts more objects and contexts into a detector's training view (no Django).

Both take decoded training images as ``(image, boxes, labels)``: a uint8 ``(3, H, W)`` tensor, its
boxes ``[[xmin, ymin, xmax, ymax], ...]`` in its pixels and their label indexes, and give one such
triple back, its boxes exact on the pixels they label. Randomness comes only from the
``random.Random`` given, so a seed gives the same views.

- ``mosaic``: four images in the four quadrants of one image of the first one's size (YOLO's
  mosaic at the images' own scale: each quadrant shows a crop, so small objects stay small), split
  at a random centre.
- ``copy_paste``: labelled boxes cut from other images and pasted where they cover at most
  ``max_cover`` of any box already there (the hard scenes' own occlusion rule keeps 60 % visible).

``compose`` is the hook ``ml.detection.detector`` calls before its flip and zoom.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

Item = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
GREY = 127


def clip_to_window(
    boxes: torch.Tensor, labels: torch.Tensor, x0: int, y0: int, w: int, h: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes moved into the frame of the window ``(x0, y0, w, h)`` and clipped to it; a box keeping
    under half its area, or under 2 px a side, is dropped (also ``detector.augment``'s zoom-in crop)."""
    shifted = boxes.reshape(-1, 4) - torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
    clipped = torch.stack(
        [
            shifted[:, 0].clamp(0, w),
            shifted[:, 1].clamp(0, h),
            shifted[:, 2].clamp(0, w),
            shifted[:, 3].clamp(0, h),
        ],
        dim=1,
    )
    area = (shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1])
    kw = clipped[:, 2] - clipped[:, 0]
    kh = clipped[:, 3] - clipped[:, 1]
    keep = (kw.clamp(min=0) * kh.clamp(min=0) >= 0.5 * area) & (kw >= 2) & (kh >= 2)
    return clipped[keep], labels.reshape(-1)[keep]


def mosaic(parts: Sequence[Item], rng: random.Random) -> Item:
    """Four images (the first one's size) in the quadrants around a centre drawn in the middle half
    of each side; each quadrant shows a crop of its image at a random place, at the image's scale."""
    if len(parts) != 4:
        raise ValueError(f"a mosaic has four parts, not {len(parts)}")
    _, h, w = parts[0][0].shape
    cx, cy = rng.randint(w // 4, 3 * w // 4), rng.randint(h // 4, 3 * h // 4)
    canvas = torch.full((3, h, w), GREY, dtype=parts[0][0].dtype)
    all_boxes, all_labels = [], []
    regions = ((0, 0, cx, cy), (cx, 0, w, cy), (0, cy, cx, h), (cx, cy, w, h))
    for (image, boxes, labels), (x0, y0, x1, y1) in zip(parts, regions, strict=True):
        rw, rh = x1 - x0, y1 - y0
        _, ph, pw = image.shape
        cw, ch = min(rw, pw), min(rh, ph)  # a smaller image fills what it can; grey around it
        if cw < 1 or ch < 1:
            continue
        ox, oy = rng.randint(0, pw - cw), rng.randint(0, ph - ch)
        canvas[:, y0 : y0 + ch, x0 : x0 + cw] = image[:, oy : oy + ch, ox : ox + cw]
        kept, kept_labels = clip_to_window(boxes, labels, ox, oy, cw, ch)
        all_boxes.append(kept + torch.tensor([x0, y0, x0, y0], dtype=torch.float32))
        all_labels.append(kept_labels)
    return canvas, torch.cat(all_boxes).reshape(-1, 4), torch.cat(all_labels)


def _cover(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The share of each of ``boxes`` that ``box`` covers."""
    ix = (torch.minimum(box[2], boxes[:, 2]) - torch.maximum(box[0], boxes[:, 0])).clamp(min=0)
    iy = (torch.minimum(box[3], boxes[:, 3]) - torch.maximum(box[1], boxes[:, 1])).clamp(min=0)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1e-6)
    return ix * iy / area


def copy_paste(
    item: Item,
    donors: Sequence[Item],
    count: int,
    rng: random.Random,
    max_cover: float = 0.4,
    tries: int = 5,
) -> Item:
    """Up to ``count`` labelled boxes, each cut from a donor drawn at random (with its pixels, a
    rectangle), pasted at a random place of ``item`` where it covers at most ``max_cover`` of
    every box there (pasted ones included); a box that finds no such place in ``tries`` is left out."""
    image, boxes, labels = item
    image = image.clone()
    boxes, labels = boxes.reshape(-1, 4).clone(), labels.reshape(-1).clone()
    _, h, w = image.shape
    for _ in range(count):
        donor_image, donor_boxes, donor_labels = rng.choice(donors)
        if not len(donor_boxes):
            continue
        k = rng.randrange(len(donor_boxes))
        x1, y1, x2, y2 = (round(float(v)) for v in donor_boxes[k])
        _, dh, dw = donor_image.shape
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(dw, x2), min(dh, y2)
        bw, bh = x2 - x1, y2 - y1
        if bw < 2 or bh < 2 or bw > w or bh > h:
            continue
        for _ in range(tries):
            px, py = rng.randint(0, w - bw), rng.randint(0, h - bh)
            new = torch.tensor([px, py, px + bw, py + bh], dtype=torch.float32)
            if len(boxes) and float(_cover(new, boxes).max()) > max_cover:
                continue
            image[:, py : py + bh, px : px + bw] = donor_image[:, y1:y2, x1:x2]
            boxes = torch.cat([boxes, new[None]])
            labels = torch.cat([labels, donor_labels.reshape(-1)[k : k + 1]])
            break
    return image, boxes, labels


def compose(item: Item, pool: Sequence[Item], mosaic_prob: float, paste: int, rng: random.Random) -> Item:
    """The training view before flip and zoom: with probability ``mosaic_prob`` a mosaic of
    ``item`` and three images drawn from ``pool``, then up to ``paste`` boxes from ``pool`` pasted
    in. No draw from ``rng`` when both are off (the views stay those of a training without them)."""
    if mosaic_prob > 0 and pool and rng.random() < mosaic_prob:
        item = mosaic([item, *(rng.choice(pool) for _ in range(3))], rng)
    if paste > 0 and pool:
        item = copy_paste(item, pool, paste, rng)
    return item
