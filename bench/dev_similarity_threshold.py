"""The near-duplicate threshold (``VF_SIMILARITY_DUPLICATE_DISTANCE``), chosen on development photos.

    .venv/bin/python bench/dev_similarity_threshold.py [--seed 0]

Reads only the training side of ``bench_quality``'s split of the food photos (seed 0; its test side
is never read). Each photo gets near-copies a person would upload again: re-encoded as JPEG at
quality 60, resized to half, cropped to its central 90 %, 10 % brighter. The descriptor is a lite0
version's (the L2-normalised pooled features of tf_efficientnet_lite0 at 224 px, what the
predictors return), and the distance the service's: cosine distance. Prints the distances of each
near-copy to its original, the distance of each photo to its nearest *other* photo (a different
dish, often of the same food group), and the threshold halfway (in log scale) between the largest
near-copy and the smallest distinct pair, with how many of each side it gets right.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_quality  # noqa: E402


def variants(data: bytes) -> dict[str, bytes]:
    from PIL import Image, ImageEnhance

    picture = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = picture.size

    def jpeg(image, quality=90) -> bytes:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        return out.getvalue()

    return {
        "jpeg q60": jpeg(picture, 60),
        "half size": jpeg(picture.resize((w // 2, h // 2), Image.BICUBIC)),
        "crop 90 %": jpeg(picture.crop((w // 20, h // 20, w - w // 20, h - h // 20))),
        "brighter 10 %": jpeg(ImageEnhance.Brightness(picture).enhance(1.1)),
    }


def descriptors(images: list[bytes]) -> np.ndarray:
    import timm
    import torch

    from ml.data import build_cache
    from ml.models import data_config, load_package_weights
    from ml.recognition.train import forward_outputs

    arch = "tf_efficientnet_lite0"
    model = timm.create_model(arch, pretrained=False)
    load_package_weights(model, arch)
    model = model.eval().to(memory_format=torch.channels_last)
    dcfg = data_config(model)
    cache, ok, _ = build_cache(images, 224, dcfg["interpolation"])
    assert len(ok) == len(images)  # noqa: S101
    _, feats = forward_outputs(model, cache, mean=dcfg["mean"], std=dcfg["std"], want_features=True)
    x = feats.numpy().astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    images, y, _ = bench_quality.photos()
    train, _ = bench_quality.split(y, args.seed)  # the test side is never read
    originals = [images[i] for i in train]
    copies, kinds, owner = [], [], []
    for i, data in enumerate(originals):
        for kind, copy in variants(data).items():
            copies.append(copy)
            kinds.append(kind)
            owner.append(i)
    x = descriptors(originals + copies)
    xo, xc = x[: len(originals)], x[len(originals) :]
    near = np.asarray([1.0 - float(xo[o] @ c) for o, c in zip(owner, xc, strict=True)])
    sims = xo @ xo.T
    np.fill_diagonal(sims, -np.inf)
    distinct = 1.0 - sims.max(axis=1)

    print(f"{len(originals)} training-side photos, {len(copies)} near-copies")
    print("| pairs | n | min | median | max |\n| --- | --- | --- | --- | --- |")
    for kind in dict.fromkeys(kinds):
        d = near[np.asarray(kinds) == kind]
        print(f"| near-copy: {kind} | {len(d)} | {d.min():.4f} | {np.median(d):.4f} | {d.max():.4f} |")
    print(f"| near-copy: all | {len(near)} | {near.min():.4f} | {np.median(near):.4f} | {near.max():.4f} |")
    print(
        f"| nearest other photo | {len(distinct)} | {distinct.min():.4f} | {np.median(distinct):.4f} "
        f"| {distinct.max():.4f} |"
    )
    print("| threshold | near-copies flagged | distinct photos flagged |\n| --- | --- | --- |")
    for t in (0.03, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2):
        print(f"| {t} | {np.mean(near <= t):.3f} | {np.mean(distinct <= t):.3f} |")
    threshold = float(np.sqrt(near.max() * distinct.min())) if distinct.min() > near.max() else None
    if threshold is None:
        threshold = float(np.sqrt(np.quantile(near, 0.95) * np.quantile(distinct, 0.05)))
        print("the two sides overlap: threshold between the near-copies' 95th and the others' 5th percentile")
    print(
        f"threshold {threshold:.4f}: near-copies flagged {np.mean(near <= threshold):.3f}, "
        f"distinct photos flagged {np.mean(distinct <= threshold):.3f}"
    )


if __name__ == "__main__":
    main()
