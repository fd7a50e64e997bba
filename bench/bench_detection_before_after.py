"""Detection training before and after issue 23's changes, on the same easy photo scenes, per seed.

    VF_BENCH_DATA=$PWD/var/bench-data .venv/bin/python bench/bench_detection_before_after.py \\
        [--seeds 0,1] [--train 96] [--test 24] [--before 6d5e49e] [--threads 1] [--no-before]

"Before" is ``fit_detector`` as commit ``--before`` had it (read with ``git show`` into a
temporary module, so both run in this process on the same scenes): input 256 px, cosine schedule
over at most 30 epochs, cut by the 600 s budget, whole backbone trained. "After" is today's
``fit_detector`` with the configuration the API builds from the default settings (input size
from the boxes, frozen early stages, early stopping on a validation slice carved from the training
scenes, the same 600 s budget). Scenes: bench/detection_scenes.py ``easy`` (384 x 288, 1-3 photo
crops of 2 labels on a photo), benchmark photos, training and test scenes from different generator
seeds. Prints mAP@0.5 on the unseen scenes and the training time of each. ``--no-before`` trains
only today's side (the before side takes ~510 s a seed; its figures for these scenes are in
BENCHMARKS.md). Not part of the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import detection_scenes  # noqa: E402
from bench_detection_photos import default_config  # noqa: E402

from ml.detection.detector import DetectionExample, fit_detector  # noqa: E402


def _module_at(commit: str, path: str, name: str):
    source = subprocess.run(  # noqa: S603
        ["git", "show", f"{commit}:{path}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,  # noqa: S607
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="vf-before-"))
    (folder / f"{name}.py").write_text(source)
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--train", type=int, default=96)
    parser.add_argument("--test", type=int, default=24)
    parser.add_argument("--before", default="6d5e49e")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--no-before", action="store_true", help="train today's side only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    before = (
        None if args.no_before else _module_at(args.before, "ml/detection/detector.py", "detector_before")
    )
    labels = [{"id": n, "name": n} for n in detection_scenes.label_names("easy")]
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        train = detection_scenes.scenes(args.train, "easy", "bench", seed=1000 * seed + 1)
        test = detection_scenes.scenes(args.test, "easy", "bench", seed=1000 * seed + 2)
        scenes = [(detection_scenes.jpeg(image), b, lab) for image, b, lab in train + test]
        mask = [i >= len(train) for i in range(len(scenes))]
        old = {"map50": float("nan"), "train_time_s": float("nan"), "epochs": "-"}
        if before is not None:
            old_examples = [before.DetectionExample(image=j, boxes=b, labels=lab) for j, b, lab in scenes]
            old = before.fit_detector(
                old_examples,
                mask,
                labels,
                before.DetectConfig(
                    input_size=256, epochs=30, time_budget_s=args.budget, seed=seed, num_threads=args.threads
                ),
            ).metrics
            print(
                f"seed {seed} before: mAP@0.5 {old['map50']:.3f} in {old['train_time_s']:.0f} s, "
                f"{old['epochs']} epochs",
                flush=True,
            )
        config = default_config(seed, args.threads, args.budget)
        new = fit_detector(
            [DetectionExample(image=j, boxes=b, labels=lab) for j, b, lab in scenes], mask, labels, config
        ).metrics
        print(
            f"seed {seed} after: mAP@0.5 {new['map50']:.3f} in {new['train_time_s']:.0f} s, "
            f"{new['epochs']} epochs "
            f"(input {new['input_size']}, best {new['best_epoch']}, stopped: {new['stopped']})",
            flush=True,
        )
        rows.append((seed, old, new))
    print("\n| seed | before: mAP@0.5 | time | epochs | after: mAP@0.5 | time | epochs (best) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for seed, old, new in rows:
        print(
            f"| {seed} | {old['map50']:.3f} | {old['train_time_s']:.0f} s | {old['epochs']} "
            f"| {new['map50']:.3f} | {new['train_time_s']:.0f} s | {new['epochs']} ({new['best_epoch']}) |"
        )


if __name__ == "__main__":
    main()
