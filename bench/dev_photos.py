"""Design choices for photos, made on the benchmark's training sides only (never its test side).

    .venv/bin/python bench/dev_photos.py [--seeds 0,1,2] [--folds 5]

For each seed's stratified 80/20 split of the food photos (``bench_quality.photos``), only the 80 %
is read: the recipe's linear head (``ml.recognition.probe.fit_linear_head``, C by its inner 3-fold
CV) is scored by stratified k-fold cross-validation *within* that training side, for frozen features of
each backbone at its native size and for combinations of them (features side by side), with the
mirrored images used as extra training rows ("aug") or averaged with the originals ("avg"), or
one head per backbone with their probabilities averaged ("ens"); ``--resize squash`` reads whole
photos squashed to the square instead of their centre crops.
The figures chose the recipe's photo candidate (ml/recognition/photo.py: backbones, flip handling); the
benchmark's test side is read by bench_quality.py alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_quality  # noqa: E402

BACKBONES = {"lite0": ("tf_efficientnet_lite0", 224), "lite1": ("tf_efficientnet_lite1", 240),
             "lite2": ("tf_efficientnet_lite2", 260)}  # fmt: skip


def features(images: list[bytes], needed, default_resize: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Features (and the mirror images') per name: ``lite2`` at ``default_resize``, ``lite2:crop`` or
    ``lite2:squash`` explicitly; ``@288`` after either sets the input side (default: native)."""
    import timm
    import torch

    from ml.data import build_cache
    from ml.models import data_config, load_package_weights
    from ml.recognition.train import forward_outputs

    out = {}
    for name in sorted(needed):
        spec, _, side = name.partition("@")
        short, _, resize = spec.partition(":")
        resize = resize or default_resize
        arch, size = BACKBONES[short]
        size = int(side) if side else size
        t0 = time.monotonic()
        model = timm.create_model(arch, pretrained=False)
        load_package_weights(model, arch)
        model = model.eval().to(memory_format=torch.channels_last)
        dcfg = data_config(model)
        cache, ok, _ = build_cache(images, size, dcfg["interpolation"], resize=resize)
        assert len(ok) == len(images)  # noqa: S101
        _, f = forward_outputs(model, cache, mean=dcfg["mean"], std=dcfg["std"], want_features=True)
        _, g = forward_outputs(model, cache.flip(-1), mean=dcfg["mean"], std=dcfg["std"], want_features=True)
        out[name] = (f.numpy().astype(np.float64), g.numpy().astype(np.float64))
        print(f"  {name}: {len(images)} images x2 in {time.monotonic() - t0:.1f} s", flush=True)
    return out


def cv_accuracy(x, xf, y, flip: str, folds: int, seed: int) -> float:
    """Stratified k-fold accuracy of the recipe's own head (``ml.recognition.probe.fit_linear_head``: C, and
    for "aug" whether the mirrored rows help, by its inner 3-fold CV) within ``x``."""
    from sklearn.model_selection import StratifiedKFold

    from ml.recognition import probe

    right = total = 0
    k = min(folds, int(np.bincount(y)[np.bincount(y) > 0].min()))
    for train, held in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y):
        xt, xh, flipped = x[train], x[held], None
        if flip == "aug":
            flipped = xf[train]
        elif flip == "avg":
            xt, xh = (xt + xf[train]) / 2, (xh + xf[held]) / 2
        head = probe.fit_linear_head(
            "multi_class", xt, y[train], int(y.max()) + 1, flipped=flipped, seed=seed
        )
        right += int((probe.predict("multi_class", head, xh).argmax(axis=1) == y[held]).sum())
        total += len(held)
    return right / total


def cv_accuracy_ensemble(parts, y, folds: int, seed: int) -> float:
    """The same folds, one head per backbone (mirror-averaged features), probabilities averaged."""
    from sklearn.model_selection import StratifiedKFold

    from ml.recognition import probe

    right = total = 0
    k = min(folds, int(np.bincount(y)[np.bincount(y) > 0].min()))
    for train, held in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(parts[0][0], y):
        probs = 0
        for x, xf in parts:
            avg = (x + xf) / 2
            head = probe.fit_linear_head("multi_class", avg[train], y[train], int(y.max()) + 1, seed=seed)
            probs = probs + probe.predict("multi_class", head, avg[held])
        right += int((probs.argmax(axis=1) == y[held]).sum())
        total += len(held)
    return right / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--resize", choices=("crop", "squash"), default="crop")
    parser.add_argument("--combos", default="lite0,lite1,lite2,lite0+lite2,lite0+lite1+lite2")
    parser.add_argument("--flips", default="aug,avg")
    args = parser.parse_args()
    images, y, _ = bench_quality.photos()
    # "a+b": features side by side; "a*b": one part, the mean of a's and b's features (views).
    combos = [tuple(c.split("+")) for c in args.combos.split(",")]
    feats = features(images, {v for c in combos for n in c for v in n.split("*")}, args.resize)
    for combo in combos:
        for part in combo:
            if "*" in part and part not in feats:
                views = [feats[v] for v in part.split("*")]
                feats[part] = tuple(sum(v[i] for v in views) / len(views) for i in (0, 1))
    results: dict[tuple, list[float]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        train, _ = bench_quality.split(y, seed)  # the test side is never touched
        for combo in combos:
            x = np.concatenate([feats[n][0][train] for n in combo], axis=1)
            xf = np.concatenate([feats[n][1][train] for n in combo], axis=1)
            for flip in args.flips.split(","):
                if flip == "ens":
                    parts = [(feats[n][0][train], feats[n][1][train]) for n in combo]
                    acc = cv_accuracy_ensemble(parts, y[train], args.folds, seed)
                else:
                    acc = cv_accuracy(x, xf, y[train], flip, args.folds, seed)
                results.setdefault((combo, flip), []).append(acc)
                print(f"seed {seed} {'+'.join(combo):18s} flip {flip:4s}: {acc:.4f}", flush=True)
    print("\n| features | flips | CV accuracy per seed | mean |\n| --- | --- | --- | --- |")
    for (combo, flip), accs in sorted(results.items(), key=lambda kv: -np.mean(kv[1])):
        print(f"| {'+'.join(combo)} | {flip} | {', '.join(f'{a:.3f}' for a in accs)} | {np.mean(accs):.4f} |")


if __name__ == "__main__":
    main()
