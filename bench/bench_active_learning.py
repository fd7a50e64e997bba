"""Active learning against random choice: how many labels suggestions need to reach the accuracy
random choice reaches with all of its labels (issue 22; goal: at most 60 %).

Simulated on scikit-learn's digits (offline): start from 5 labelled images per label, then rounds
of 10 labels chosen by ``ml.active`` (margin uncertainty + greedy k-center on the descriptors,
as apps/suggestions ranks a pool) or at random, retraining each round; accuracy on a held-out
test side per round, over 3 seeds. The "model" is a fixed small recipe so it runs in seconds: a
logistic regression on standardised pixels, whose descriptors are the pixels projected on 16 PCA
components fitted on the whole pool (unlabelled data is free). It calls ml/ directly, not the API;
the real-photo set (bench/bench_quality.py ``photos()``) is not simulated here yet.

    .venv/bin/python bench/bench_active_learning.py [--rounds 20] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ml import active  # noqa: E402

START_PER_LABEL = 5
ROUND = 10


def _fit(x, y):
    return LogisticRegression(max_iter=2000, C=1.0).fit(x, y)


def run(strategy: str, seed: int, rounds: int, data) -> list[float]:
    x_pool, y_pool, x_test, y_test, descriptors = data
    rng = np.random.default_rng(seed)
    labelled = []
    for label in np.unique(y_pool):
        labelled.extend(rng.choice(np.flatnonzero(y_pool == label), START_PER_LABEL, replace=False).tolist())
    accuracies = []
    for _ in range(rounds + 1):
        model = _fit(x_pool[labelled], y_pool[labelled])
        accuracies.append(float((model.predict(x_test) == y_test).mean()))
        rest = np.setdiff1d(np.arange(len(y_pool)), labelled)
        if strategy == "random":
            chosen = rng.choice(rest, ROUND, replace=False)
        else:
            probs = model.predict_proba(x_pool[rest])
            order = active.select_diverse(active.uncertainty_margin(probs), descriptors[rest], ROUND)
            chosen = rest[order]
        labelled.extend(int(i) for i in chosen)
    return accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    digits = load_digits()
    results = {"suggestions": [], "random": []}
    for seed in seeds:
        x_pool, x_test, y_pool, y_test = train_test_split(
            digits.data, digits.target, test_size=0.3, stratify=digits.target, random_state=seed
        )
        scaler = StandardScaler().fit(x_pool)
        x_pool, x_test = scaler.transform(x_pool), scaler.transform(x_test)
        descriptors = PCA(16, random_state=seed).fit_transform(x_pool)
        descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True) + 1e-9
        data = (x_pool, y_pool, x_test, y_test, descriptors)
        for strategy in results:
            results[strategy].append(run(strategy, seed, args.rounds, data))
    start = START_PER_LABEL * 10
    labels = [start + ROUND * r for r in range(args.rounds + 1)]
    mean = {k: np.mean(v, axis=0) for k, v in results.items()}
    print("labels  suggestions  random")
    for i, n in enumerate(labels):
        print(f"{n:6d}  {mean['suggestions'][i]:.4f}       {mean['random'][i]:.4f}")
    target = mean["random"][-1]
    reached = next((labels[i] for i, a in enumerate(mean["suggestions"]) if a >= target), None)
    added_random = labels[-1] - start
    if reached is None:
        print(f"suggestions never reach random's final {target:.4f}")
    else:
        added = reached - start
        print(
            f"random's final accuracy {target:.4f} at {labels[-1]} labels; suggestions reach it at {reached} "
            f"labels: {added} of random's {added_random} chosen labels ({100 * added / added_random:.0f} %), "
            f"{100 * reached / labels[-1]:.0f} % of its labels counting the {start} to start"
        )


if __name__ == "__main__":
    main()
