"""Detection benchmark: ml.detection's trainer against the same torchvision detector as a plain script.

    .venv/bin/python bench/bench_detection.py [--scenes 300] [--size 256] [--epochs 8]
        [--input-size 256] [--threads 1] [--seed 0]

Draws a seeded scene set (coloured squares and discs on noise, tests/detection/scenes.py), splits it
80/20 and trains, in the same run and on the same split:

- ``ml.detection.detector.fit_detector``: FCOS + FPN on the offline lite0 backbone with frozen BatchNorm,
  flip and zoom augmentation, warm-up + cosine AdamW (what a detection task trains with);
- the baseline: the same ``build_detector`` net trained by a plain loop (no augmentation,
  constant AdamW learning rate, same epochs and batch size).

It prints mAP@0.5 on the unseen test scenes and the train time of each, with the ratios, then the
detect latency of the trained predictor for 1 and 10 records (decode + one forward pass). Not part of
the test suite; a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.detection.detector import (  # noqa: E402
    DetectConfig,
    DetectionExample,
    DetectionPredictor,
    _load_examples,
    _no_onednn,
    _predict_tensors,
    build_detector,
    fit_detector,
)
from ml.detection.evaluate import evaluate_detections  # noqa: E402
from tests.detection.scenes import png, scenes  # noqa: E402

LABELS = [{"id": "square", "name": "square"}, {"id": "disc", "name": "disc"}]


def plain_baseline(examples, mask, config: DetectConfig) -> tuple[float, float]:
    """The torchvision detector as a plain script: no augmentation, constant lr. (mAP, seconds)."""
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    with _no_onednn():
        cache = _load_examples(examples, config.input_size)
        train = [c for c, test in zip(cache, mask, strict=True) if not test]
        test = [c for c, t in zip(cache, mask, strict=True) if t]
        model = build_detector(len(LABELS), config)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
        for _ in range(config.epochs):
            model.train()
            for start in range(0, len(train), config.batch_size):
                batch = train[start : start + config.batch_size]
                images = [image.float() / 255 for image, _, _ in batch]
                targets = [{"boxes": b, "labels": lab + 1} for _, b, lab in batch]
                loss = sum(model(images, targets).values())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        seconds = time.perf_counter() - started
        predicted = _predict_tensors(model, [image for image, _, _ in test], torch.device("cpu"))
    truth = [{"boxes": b.tolist(), "labels": lab.tolist()} for _, b, lab in test]
    return evaluate_detections(truth, predicted, len(LABELS))["map50"], seconds


def latency(predictor: DetectionPredictor, payloads: list[bytes], repeats: int = 10) -> float:
    """Median seconds to decode ``payloads`` and run them as one batch."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.predict_batch([predictor.preprocess(p) for p in payloads])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--size", type=int, default=256, help="scene width (height is 3/4 of it)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = scenes(args.scenes, seed=args.seed, size=(args.size, args.size * 3 // 4))
    examples = [DetectionExample(image=png(image), boxes=b, labels=lab) for image, b, lab in data]
    cut = int(len(examples) * 0.8)
    mask = [i >= cut for i in range(len(examples))]
    config = DetectConfig(
        input_size=args.input_size, epochs=args.epochs, seed=args.seed, num_threads=args.threads
    )
    print(
        f"{args.scenes} scenes of {args.size} px, {cut} train / {len(examples) - cut} test, "
        f"input {args.input_size} px, {args.epochs} epochs, {args.threads} thread(s)"
    )

    out = Path("var/bench-detector")
    result = fit_detector(examples, mask, LABELS, config, out_dir=out)
    ours_map, ours_s = result.metrics["map50"], result.metrics["train_time_s"]
    base_map, base_s = plain_baseline(examples, mask, config)
    print(
        f"ml.detection mAP@0.5 {ours_map:.3f}  train {ours_s:7.1f} s  "
        f"(precision {result.metrics['precision']}, recall {result.metrics['recall']} at 0.3)"
    )
    print(f"plain loop  mAP@0.5 {base_map:.3f}  train {base_s:7.1f} s")
    print(f"ratio       mAP x{ours_map / max(base_map, 1e-9):.2f}  time x{ours_s / base_s:.2f}")

    predictor = DetectionPredictor.load(out, num_threads=args.threads)
    payloads = [png(image) for image, _, _ in data[cut : cut + 10]]
    one, ten = latency(predictor, payloads[:1]), latency(predictor, payloads)
    print(
        f"detect latency (decode + one forward): 1 record {one * 1000:.0f} ms, "
        f"10 records {ten * 1000:.0f} ms ({ten / one:.1f}x of one)"
    )


if __name__ == "__main__":
    main()
