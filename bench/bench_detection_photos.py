"""Detection on cluttered photo scenes: the recipe against a plain torchvision loop, per seed.

    VF_BENCH_DATA=$PWD/var/bench-data .venv/bin/python bench/bench_detection_photos.py \\
        [--seeds 0,1,2] [--train 160] [--test 60] [--kind hard] [--half bench] [--threads 1]
        [--plain-epochs 8] [--plain-also-at 4] [--budget 600] [--no-plain] [--no-recipe]
        [--set key=value ...]

Scenes: bench/detection_scenes.py (``hard``: 5 labels of real food photo crops, 24-160 px, up to 5
a scene, on mosaics of other photos with distractor crops and occlusion, 384 x 288 px). Per seed,
``--train`` training scenes and ``--test`` unseen scenes are drawn (different seeds of the
generator), then, in the same run and on the same scenes:

- the recipe: ``ml.detection.detector.fit_detector`` with the configuration the API builds from
  the default settings (apps/detection/training.py: ``VF_DETECTION_INPUT_SIZE``,
  ``VF_DETECTION_EPOCHS``, the task's default budget ``VF_DETECTION_TIME_BUDGET``), which carves
  its own validation slice from the training scenes;
- the plain loop: the same ``build_detector`` net (whole backbone trained, BatchNorm frozen as in
  the net) at the input size the recipe chose, AdamW at a constant 1e-3, shuffled batches of 8,
  ``--plain-epochs`` epochs, no augmentation, no validation, oneDNN off as in ml.detection.

mAP@0.5 on the unseen scenes and the training time of each. ``--half dev`` draws the scenes from
the development photos instead (what design choices were made on; ``--set freeze_stages=2`` etc.
overrides a DetectConfig field there). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import detection_scenes  # noqa: E402

from ml.detection.detector import (  # noqa: E402
    DetectConfig,
    DetectionExample,
    _load_examples,
    _no_onednn,
    _predict_tensors,
    build_detector,
    choose_input_size,
    fit_detector,
)
from ml.detection.evaluate import evaluate_detections  # noqa: E402


def default_config(seed: int, threads: int, budget: float | None) -> DetectConfig:
    """What apps/detection/training.py builds with the default settings."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings

    return DetectConfig(
        input_size=settings.VF_DETECTION_INPUT_SIZE,
        epochs=settings.VF_DETECTION_EPOCHS,
        time_budget_s=budget if budget is not None else settings.VF_DETECTION_TIME_BUDGET,
        seed=seed,
        num_threads=threads,
    )


def plain_loop(
    examples, mask, num_labels: int, input_size: int, epochs: int, seed: int, also_at: tuple[int, ...] = ()
) -> tuple[float, float, dict[int, tuple[float, float]]]:
    """The same net as a plain torchvision script: (mAP@0.5 on the test side, seconds), and the
    same after each epoch count in ``also_at`` (scored on the way; the scoring's time left out)."""
    import random

    torch.manual_seed(seed)
    order_rng = random.Random(seed)  # noqa: S311  # nosec B311
    config = DetectConfig(input_size=input_size, freeze_stages=0, seed=seed, box_activation="relu")
    started = time.perf_counter()
    scoring = 0.0  # seconds spent scoring after the epochs of ``also_at``
    on_the_way: dict[int, tuple[float, float]] = {}

    def score(model, test) -> float:
        predicted = _predict_tensors(model, [image for image, _, _ in test], torch.device("cpu"))
        truth = [{"boxes": b.tolist(), "labels": lab.tolist()} for _, b, lab in test]
        return evaluate_detections(truth, predicted, num_labels)["map50"]

    with _no_onednn():
        cache = _load_examples(examples, input_size)
        train = [c for c, test in zip(cache, mask, strict=True) if not test]
        test = [c for c, t in zip(cache, mask, strict=True) if t]
        model = build_detector(num_labels, config)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        for epoch in range(1, epochs + 1):
            model.train()
            order_rng.shuffle(train)
            for start in range(0, len(train), config.batch_size):
                batch = train[start : start + config.batch_size]
                images = [image.float() / 255 for image, _, _ in batch]
                targets = [{"boxes": b, "labels": lab + 1} for _, b, lab in batch]
                loss = sum(model(images, targets).values())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if epoch in also_at and epoch < epochs:
                paused = time.perf_counter()
                on_the_way[epoch] = (score(model, test), paused - started - scoring)
                scoring += time.perf_counter() - paused
        seconds = time.perf_counter() - started - scoring
        return score(model, test), seconds, on_the_way


def overrides(items: list[str]) -> dict:
    """``--set key=value`` items as DetectConfig fields and values (int, float or text); a key that
    names no field stops the run."""
    known = {f.name for f in fields(DetectConfig)}
    found = {}
    for item in items:
        key, value = item.split("=", 1)
        assert key in known, key
        found[key] = _value(value)
    return found


def seed_scenes(n_train: int, n_test: int, kind: str, half: str, seed: int):
    """One seed's training and test scenes, from different generator seeds (disjoint draws), as
    ``DetectionExample``s with the test mask."""
    train = detection_scenes.scenes(n_train, kind, half, seed=1000 * seed + 1)
    test = detection_scenes.scenes(n_test, kind, half, seed=1000 * seed + 2)
    examples = [
        DetectionExample(image=detection_scenes.jpeg(image), boxes=b, labels=lab)
        for image, b, lab in train + test
    ]
    return examples, [i >= len(train) for i in range(len(examples))]


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train", type=int, default=160)
    parser.add_argument("--test", type=int, default=60)
    parser.add_argument("--kind", default="hard", choices=("hard", "easy"))
    parser.add_argument("--half", default="bench", choices=("bench", "dev"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plain-epochs", type=int, default=8)
    parser.add_argument(
        "--plain-also-at", default="", help="epoch counts the plain loop is also scored after, e.g. 4"
    )
    parser.add_argument("--budget", type=float, default=None, help="default: VF_DETECTION_TIME_BUDGET")
    parser.add_argument("--no-plain", action="store_true")
    parser.add_argument("--no-recipe", action="store_true", help="the plain loop alone (development runs)")
    parser.add_argument("--set", action="append", default=[], help="DetectConfig field=value (dev runs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = detection_scenes.label_names(args.kind)
    labels = [{"id": name, "name": name} for name in names]
    chosen = overrides(args.set)

    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        examples, mask = seed_scenes(args.train, args.test, args.kind, args.half, seed)
        config = default_config(seed, args.threads, args.budget)
        for key, value in chosen.items():
            setattr(config, key, value)
        if args.no_recipe:  # the plain loop alone, at the input size the recipe would choose
            train_side = [i for i, test in enumerate(mask) if not test]
            input_size = config.input_size or choose_input_size(examples, train_side)
            row = {
                "seed": seed,
                "map": float("nan"),
                "time": float("nan"),
                "epochs": 0,
                "best": 0,
                "stopped": "-",
            }
        else:
            result = fit_detector(examples, mask, labels, config)
            m = result.metrics
            row = {
                "seed": seed,
                "map": m["map50"],
                "time": m["train_time_s"],
                "input": m["input_size"],
                "epochs": m["epochs"],
                "best": m["best_epoch"],
                "stopped": m["stopped"],
                "val": m["val_map50"],
                "per_label": [round(r["ap"], 2) for r in m["per_label"]],
            }
            print(
                f"seed {seed} recipe: mAP@0.5 {m['map50']:.3f} in {m['train_time_s']:.0f} s "
                f"(input {m['input_size']}, {m['epochs']} epochs, best {m['best_epoch']}, "
                f"stopped: {m['stopped']}, "
                f"val mAP {m['val_map50']}, AP per label {row['per_label']}; at prob 0.3 "
                f"precision {m['precision']:.3f} recall {m['recall']:.3f}, "
                f"calibration {m.get('calibration')}; second look {m.get('second_look')})",
                flush=True,
            )
            print(
                "   history",
                [(h["epoch"], h["loss"], h.get("val_map50"), h["seconds"]) for h in m["history"]],
            )
            input_size = m["input_size"]
        if not args.no_plain:
            also_at = tuple(int(e) for e in args.plain_also_at.split(",") if e)
            plain_map, plain_s, on_the_way = plain_loop(
                examples, mask, len(labels), input_size, args.plain_epochs, seed, also_at
            )
            for epoch, (earlier_map, earlier_s) in sorted(on_the_way.items()):
                print(
                    f"seed {seed} plain loop after {epoch} epochs: "
                    f"mAP@0.5 {earlier_map:.3f} in {earlier_s:.0f} s"
                )
            row.update(plain_map=plain_map, plain_time=round(plain_s, 1))
            print(
                f"seed {seed} plain loop ({args.plain_epochs} epochs): "
                f"mAP@0.5 {plain_map:.3f} in {plain_s:.0f} s",
                flush=True,
            )
        rows.append(row)

    print("\n| seed | recipe mAP@0.5 | recipe time | epochs (best, stop) | plain mAP@0.5 | plain time |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['seed']} | {r['map']:.3f} | {r['time']:.0f} s "
            f"| {r['epochs']} ({r['best']}, {r['stopped']}) "
            f"| {r.get('plain_map', float('nan')):.3f} | {r.get('plain_time', float('nan')):.0f} s |"
        )
    print(
        f"mean recipe {statistics.mean(r['map'] for r in rows):.3f} "
        f"in {statistics.mean(r['time'] for r in rows):.0f} s"
        + (
            f"; plain {statistics.mean(r['plain_map'] for r in rows):.3f} in "
            f"{statistics.mean(r['plain_time'] for r in rows):.0f} s"
            if not args.no_plain
            else ""
        )
    )


if __name__ == "__main__":
    main()
