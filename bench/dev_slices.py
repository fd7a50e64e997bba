"""Dev slices: compare recipe variants on Fashion-MNIST images the quality benchmark never uses.

    .venv/bin/python bench/dev_slices.py --label cap128
    .venv/bin/python bench/dev_slices.py --label no-cap --patch SMALL_PROBE_SIZE=224

Each slice is images ``offset .. offset+149`` of every class of Fashion-MNIST's training file
(the benchmark uses the first 150), split 80/20 (stratified, seed 0) as the benchmark splits.
``ml.recognition.recipe.fit`` trains on the 80 % within the default budget, exactly as a training job
does; the saved version is then scored on a fixed 2,000 images of Fashion-MNIST's own test file, so a
variant's figure carries about a third of the noise of the 300 images the split holds out.

``--patch NAME=VALUE`` sets a constant of the recipe (in every module of ``RECIPE_MODULES`` that
has it) for the run (an int, float or a comma-separated tuple of names), ``--config NAME=VALUE`` a
field of ``TrainConfig``. One JSON line per slice goes to stdout and to ``var/dev-slices.jsonl``.
Design choices of the recipe are made on these figures, never on the benchmark's test side.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_quality  # noqa: E402  (the same data cache and PNG encoding as the benchmark)

PER_CLASS = 150
EXTERNAL_TEST = 2000
# The modules of ml/recognition/ that hold the recipe's constants. A constant is set in every one
# that has it, so a module that imported it by name sees the patched value too.
RECIPE_MODULES = ("recipe", "context", "candidates", "photo", "search", "selection")


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return tuple(part for part in text.split(",") if part)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label", required=True)
    parser.add_argument("--offsets", default="1000,2000,3000,4000")
    parser.add_argument("--patch", action="append", default=[])
    parser.add_argument("--config", action="append", default=[])
    parser.add_argument("--verbose", action="store_true", help="the recipe's log on stderr")
    parser.add_argument("--budget", type=float, default=115.0, help="the fit's share of the job's 120 s")
    args = parser.parse_args()

    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import importlib

    from ml.config import TrainConfig
    from ml.recognition import recipe
    from ml.recognition.predictor import Predictor

    modules = [importlib.import_module(f"ml.recognition.{name}") for name in RECIPE_MODULES]
    for item in args.patch:
        name, _, text = item.partition("=")
        holders = [module for module in modules if hasattr(module, name)]
        if not holders:  # a typo would otherwise measure the recipe unchanged
            parser.error(f"no module of the recipe ({', '.join(RECIPE_MODULES)}) has {name}")
        for module in holders:
            setattr(module, name, _value(text))
    config = TrainConfig(time_budget_s=args.budget)
    for item in args.config:
        name, _, text = item.partition("=")
        config = dataclasses.replace(config, **{name: _value(text)})

    pixels, targets = bench_quality.fashion_file("train")
    test_pixels, test_targets = bench_quality.fashion_file("t10k")
    external = [bench_quality._png(p) for p in test_pixels[:EXTERNAL_TEST]]
    names = list(bench_quality.FASHION_NAMES)
    labels = [{"id": str(i), "name": n} for i, n in enumerate(names)]
    out = ROOT / "var" / "dev-slices.jsonl"
    out.parent.mkdir(exist_ok=True)
    for offset in [int(o) for o in args.offsets.split(",")]:
        chosen = np.sort(
            np.concatenate([np.flatnonzero(targets == c)[offset : offset + PER_CLASS] for c in range(10)])
        )
        y = targets[chosen]
        train, test = bench_quality.split(y, 0)
        images = [bench_quality._png(pixels[i]) for i in chosen[train]]
        items = list(zip(images, [int(t) for t in y[train]], strict=True))
        with tempfile.TemporaryDirectory() as folder:
            t0 = time.monotonic()
            # A token test side (the split's own test images, scored after the fit as a job does).
            held = [bench_quality._png(pixels[i]) for i in chosen[test]]
            all_items = items + list(zip(held, [int(t) for t in y[test]], strict=True))
            mask = [False] * len(items) + [True] * len(held)
            result = recipe.fit(all_items, mask, labels, "multi_class", config, out_dir=folder)
            seconds = time.monotonic() - t0
            predictor = Predictor.load(folder, device="cpu")
            probs = np.concatenate(
                [
                    np.asarray([r["probs"] for r in predictor.predict(external[i : i + 200])])
                    for i in range(0, len(external), 200)
                ]
            )
        accuracy = float((probs.argmax(1) == test_targets[:EXTERNAL_TEST]).mean())
        candidates = {
            c["name"]: [c.get("validation_score"), c.get("seconds"), c.get("epochs")]
            for c in result.metrics.get("candidates", [])
        }
        row = {
            "label": args.label,
            "offset": offset,
            "external_accuracy": round(accuracy, 4),
            "split_accuracy": result.metrics.get("accuracy"),
            "selected": result.metrics.get("selected"),
            "seconds": round(seconds, 1),
            "candidates": candidates,
            "patch": args.patch,
            "config": args.config,
        }
        print(json.dumps(row), flush=True)
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
