"""Training benchmark: fit's loop against a plain timm loop, and fit wall time on drawn data.

    .venv/bin/python bench/bench_train.py [--quick]

1. Loop throughput. The same model, the same images, the same batch size and optimiser, in
   this process: a plain timm loop over pre-normalised float tensors (the baseline) against
   ``ml.recognition.train.train_one_epoch`` over the uint8 cache (normalising and augmenting every batch,
   as fit does). Prints images/s and the ratio (goal >= 0.9). Also bf16 autocast against fp32
   for the plain loop, the measurement behind ``amp="auto"`` being off on CPU.
2. fit wall time and test accuracy for 2 labels x 20 images and 10 labels x 100 images,
   from the package's ImageNet weights and from scratch, with the default TrainConfig.

Images are drawn here (coloured shapes on noisy backgrounds, 64 px), so it runs offline.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ml.config import TrainConfig  # noqa: E402
from ml.data import build_cache, normalize  # noqa: E402
from ml.models import build_model, data_config  # noqa: E402
from ml.recognition.recipe import fit  # noqa: E402
from ml.recognition.train import make_loss, train_one_epoch  # noqa: E402
from ml.split import stratified_split  # noqa: E402

PALETTE = [(220, 40, 40), (40, 180, 60), (40, 60, 220), (230, 200, 30), (150, 40, 200)]


def draw(label: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """Class = colour x shape (5 colours x circle/square), on a noisy background."""
    background = rng.integers(90, 255, size=(size, size, 3), dtype=np.uint8)
    img = Image.fromarray(background)
    d = ImageDraw.Draw(img)
    rgb = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in PALETTE[label % 5])
    s = int(rng.integers(size // 3, size - 8))
    x, y = (int(v) for v in rng.integers(0, size - s, size=2))
    (d.ellipse if label // 5 == 0 else d.rectangle)((x, y, x + s, y + s), fill=rgb)
    return img


def dataset(num_labels: int, per_label: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    items = [(draw(k, rng), k) for k in range(num_labels) for _ in range(per_label)]
    keys = list(range(len(items)))
    mask = stratified_split(keys, [t for _, t in items], [False] * len(items), seed=seed)
    labels = [{"id": str(k), "name": f"class-{k}"} for k in range(num_labels)]
    return items, mask, labels


def plain_loop(model, x_float, y, batch_size, epochs, autocast_dtype=None) -> float:
    """The baseline: timm model, AdamW, cross-entropy over ready float tensors. Returns img/s."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    seen, started = 0, time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(x_float.shape[0])
        for idx in order.split(batch_size):
            with torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None):
                loss = F.cross_entropy(model(x_float[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
    return seen / (time.perf_counter() - started)


def fit_loop(model, cache, y, mean, std, batch_size, epochs, do_augment) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = make_loss("multi_class", TrainConfig(label_smoothing=0.0))
    gen = torch.Generator().manual_seed(0)
    seen, seconds = 0.0, 0.0
    for _ in range(epochs):
        stats = train_one_epoch(
            model, opt, cache, y, loss_fn=loss_fn, mean=mean, std=std,
            batch_size=batch_size, generator=gen, do_augment=do_augment,
        )  # fmt: skip
        seen, seconds = seen + stats["images"], seconds + stats["seconds"]
    return seen / seconds


def bench_loop(size: int, n: int, batch_size: int, epochs: int) -> None:
    print(f"\n## Loop throughput: tf_efficientnet_lite0 @ {size}px, {n} images, batch {batch_size}")
    items, _, _ = dataset(10, n // 10)
    built = build_model(TrainConfig(pretrained="package"), 10)
    model = built.model.to(memory_format=torch.channels_last)
    cfg = data_config(model)
    cache, _, _ = build_cache([im for im, _ in items], size, cfg["interpolation"])
    y = torch.tensor([t for _, t in items])
    x_float = normalize(cache, cfg["mean"], cfg["std"])

    plain_loop(model, x_float[: 2 * batch_size], y[: 2 * batch_size], batch_size, 1)  # warm-up
    rows = []
    # Interleaved rounds so load from other processes hits both sides alike; the median
    # round is reported.
    for _ in range(3):
        rows.append(
            (
                plain_loop(model, x_float, y, batch_size, epochs),
                fit_loop(model, cache, y, cfg["mean"], cfg["std"], batch_size, epochs, False),
                fit_loop(model, cache, y, cfg["mean"], cfg["std"], batch_size, epochs, True),
            )
        )
    plain, fit_plain, fit_aug = (float(np.median(col)) for col in zip(*rows, strict=True))
    ratios_plain = sorted(r[1] / r[0] for r in rows)
    ratios_aug = sorted(r[2] / r[0] for r in rows)
    print(f"plain timm loop            {plain:7.1f} img/s")
    print(
        f"fit loop, no augmentation  {fit_plain:7.1f} img/s  ratio {ratios_plain[1]:.2f} "
        f"(rounds {', '.join(f'{r:.2f}' for r in ratios_plain)})"
    )
    print(
        f"fit loop, augmentation     {fit_aug:7.1f} img/s  ratio {ratios_aug[1]:.2f} "
        f"(rounds {', '.join(f'{r:.2f}' for r in ratios_aug)})"
    )
    bf16 = plain_loop(model, x_float, y, batch_size, epochs, torch.bfloat16)
    print(f"plain loop, bf16 autocast  {bf16:7.1f} img/s  ({bf16 / plain:.2f}x fp32)")


def bench_fit(num_labels: int, per_label: int, pretrained: str) -> None:
    items, mask, labels = dataset(num_labels, per_label, seed=1)
    config = TrainConfig(pretrained=pretrained, num_threads=torch.get_num_threads())
    started = time.perf_counter()
    result = fit(items, mask, labels, "multi_class", config)
    wall = time.perf_counter() - started
    m = result.metrics
    print(
        f"{num_labels:2d} labels x {per_label:3d} images  {pretrained:8s}  wall {wall:6.1f}s  "
        f"epochs {m['epochs']:2d}  input {m['input_size']}px  accuracy {m['accuracy']:.3f}  "
        f"(train {m['number_of_training_images']}, test {m['number_of_testing_images']}, "
        f"{m['train_images_per_s']:.0f} img/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller loop benchmark")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's). On a shared, oversubscribed machine 2 OpenMP "
        "threads measured 6-10x slower than 1, so pass 1 there for stable figures.",
    )
    parser.add_argument("--part", choices=("all", "loop", "fit"), default="all")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.part in ("all", "loop"):
        if args.quick:
            bench_loop(size=64, n=128, batch_size=32, epochs=1)
        else:
            bench_loop(size=128, n=256, batch_size=32, epochs=1)
    if args.part == "loop":
        return
    print("\n## fit wall time (default TrainConfig: 15 epochs, input size from the images)")
    for num_labels, per_label in ((2, 20), (10, 100)):
        for pretrained in ("package", "none"):
            bench_fit(num_labels, per_label, pretrained)


if __name__ == "__main__":
    main()
