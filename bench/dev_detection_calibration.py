"""What calibration does to detect's answers, on development scenes: precision and recall at prob 0.3
and 0.5 with the raw FCOS scores and with the calibrated probabilities, one model a seed.

    VF_BENCH_DATA=$PWD/var/bench-data .venv/bin/python bench/dev_detection_calibration.py easy 0,1,2,3
    VF_BENCH_DATA=$PWD/var/bench-data .venv/bin/python bench/dev_detection_calibration.py hard 0

Per seed: the development scenes of ``bench/detection_scenes.py`` (``--half dev`` of
bench_detection_photos.py: easy 96 training / 24 test, hard 160 / 60), ``fit_detector`` with the
configuration the API builds (bench_detection_photos.default_config, 1 thread), which fits the
calibration on its own validation slice; then the saved version answers the test scenes through
``DetectionPredictor`` and the answers are scored twice: as answered (calibrated) and with the map
inverted (the raw scores). mAP is the same both ways (the map keeps the order). Not part of the test
suite; the choice it informed (calibration on by default) saw development scenes only.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import detection_scenes  # noqa: E402
from bench_detection_photos import default_config  # noqa: E402

from ml.detection.detector import DetectionExample, DetectionPredictor, fit_detector  # noqa: E402
from ml.detection.evaluate import evaluate_detections  # noqa: E402
from ml.detection.postprocess import uncalibrated  # noqa: E402


def main() -> None:
    kind, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
    torch.set_num_threads(1)
    labels = [{"id": n, "name": n} for n in detection_scenes.label_names(kind)]
    ntrain, ntest = (96, 24) if kind == "easy" else (160, 60)
    for seed in seeds:
        train = detection_scenes.scenes(ntrain, kind, "dev", seed=1000 * seed + 1)
        test = detection_scenes.scenes(ntest, kind, "dev", seed=1000 * seed + 2)
        jpeg = detection_scenes.jpeg
        examples = [DetectionExample(image=jpeg(i), boxes=b, labels=lab) for i, b, lab in train + test]
        mask = [i >= len(train) for i in range(len(examples))]
        out = tempfile.mkdtemp(prefix=f"vf-calibration-{kind}-{seed}-")
        started = time.time()
        result = fit_detector(examples, mask, labels, default_config(seed, 1, None), out_dir=out)
        calibration = result.metrics["calibration"]
        answers = DetectionPredictor.load(out, mode="eager").predict([jpeg(i) for i, _, _ in test])
        truth = [{"boxes": b, "labels": lab} for _, b, lab in test]
        answered = [
            {
                "boxes": [o["bound_box"] for o in a["objects"]],
                "scores": [o["prob"] for o in a["objects"]],
                "labels": [o["label"] for o in a["objects"]],
            }
            for a in answers
        ]
        raw = [{**a, "scores": uncalibrated(a["scores"], calibration).tolist()} for a in answered]
        seconds, val = time.time() - started, result.metrics["val_images"]
        row = [kind, seed, f"{seconds:.0f} s", f"val {val}", calibration]
        for name, predicted in (("raw", raw), ("calibrated", answered)):
            for threshold in (0.3, 0.5):
                e = evaluate_detections(truth, predicted, len(labels), threshold=threshold)
                row.append(
                    f"{name}@{threshold} mAP {e['map50']:.3f} P {e['precision']:.3f} R {e['recall']:.3f}"
                )
        print(" | ".join(map(str, row)), flush=True)


if __name__ == "__main__":
    main()
