"""Small grey images, two labels x 25: which kind of candidate generalises, on images the quality
benchmark never scores.

    .venv/bin/python bench/dev_small_grey.py [--pairs 0-6,2-4,5-7,1-3,7-9,4-6] [--seeds 0]

The recipe breaks ties on a validation slice by kind (``ml.recognition.selection.TIE_ORDER``); on a
2 x 25 task the slice is 10 images and every candidate scores 1.0 on it. That order was first read
off the digits benchmark's own test side, which is not allowed; this script re-derives it on
Fashion-MNIST's *test file* (``t10k``), which no benchmark uses: for each pair of classes, 25
training images of each and 300 others to score, each candidate kind is fitted alone
(``ml.recognition.recipe.fit`` with ``candidates`` set to that kind, the default budget) and scored
on the 300; "mix" is the even mean of the probe's and the net's probabilities (what a blend serves).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_quality  # noqa: E402

KINDS = {"probe": ("probe_kernel",), "scratch": ("scratch",), "finetune": ("finetune",)}
PER_CLASS = 25
SCORED = 150


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default="0-6,2-4,5-7,1-3,7-9,4-6")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--kinds", default="probe,scratch,finetune")
    args = parser.parse_args()
    from ml.config import TrainConfig
    from ml.recognition.recipe import fit

    pixels, targets = bench_quality.fashion_file("t10k")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for pair in args.pairs.split(","):
            a, b = (int(c) for c in pair.split("-"))
            rng = np.random.default_rng(seed)
            train, scored = [], []
            for c in (a, b):
                pool = rng.permutation(np.flatnonzero(targets == c))
                train += list(pool[:PER_CLASS])
                scored += list(pool[PER_CLASS : PER_CLASS + SCORED])
            items = [(bench_quality._png(pixels[i]), int(targets[i] == b)) for i in train + scored]
            mask = [False] * len(train) + [True] * len(scored)
            labels = [{"id": "a", "name": str(a)}, {"id": "b", "name": str(b)}]
            row = {"pair": pair, "seed": seed}
            probs = {}
            for kind in args.kinds.split(","):
                t0 = time.monotonic()
                config = TrainConfig(time_budget_s=115.0, seed=seed, candidates=KINDS[kind])
                result = fit(items, mask, labels, "multi_class", config)
                m = result.metrics
                probs[kind] = np.asarray([p["probs"] for p in result.predictions])
                row[kind] = {
                    "accuracy": round(m["accuracy"], 4),
                    "validation": m["candidates"][0]["validation_score"],
                    "seconds": round(time.monotonic() - t0, 1),
                }
            if {"probe", "scratch"} <= set(probs):
                # What a tie resolved to the even blend of the two would have served.
                mixed = (probs["probe"] + probs["scratch"]) / 2
                truth = np.asarray([p["true"] for p in result.predictions])
                row["mix"] = {"accuracy": round(float((mixed.argmax(1) == truth).mean()), 4)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    kinds = args.kinds.split(",") + (["mix"] if "mix" in rows[0] else [])
    print("\n| pair | seed | " + " | ".join(kinds) + " |\n| --- | --- |" + " --- |" * len(kinds))
    for row in rows:
        print(
            f"| {row['pair']} | {row['seed']} | "
            + " | ".join(f"{row[k]['accuracy']:.4f}" for k in kinds)
            + " |"
        )
    means = {k: float(np.mean([r[k]["accuracy"] for r in rows])) for k in kinds}
    wins = {k: sum(r[k]["accuracy"] == max(r[j]["accuracy"] for j in kinds) for r in rows) for k in kinds}
    print("| mean | | " + " | ".join(f"{means[k]:.4f} (best in {wins[k]})" for k in kinds) + " |")


if __name__ == "__main__":
    main()
