"""Where a detector's errors are, on hard development scenes: boxes not found, or labels wrong.

    VF_BENCH_DATA=$PWD/var/bench-data .venv/bin/python bench/dev_detection_errors.py 0 \\
        [--set center_sampling_radius=2.5 --set box_activation=softplus]

Per seed: the hard development scenes of ``bench/detection_scenes.py`` (160 training / 60 test, as
``bench_detection_photos.py --half dev``; ``--kind easy``: the easy ones, 96 / 24, as the API's),
``fit_detector`` with the configuration the API builds (``bench_detection_photos.default_config``,
1 thread; ``--set`` overrides a field), then on the
test scenes:

- mAP@0.5 with labels and class-agnostic (every label counted as one);
- for each true box, the label of the most probable prediction overlapping it at IoU 0.5, or
  "missed" (a confusion table: true labels in rows);
- a second look at the labels: a logistic regression on the trained detector's own backbone
  features pooled inside each true box (its three levels, as the second look pools them), fitted on the
  training scenes' boxes (flipped, and jittered by up to 10 % of their size), and the same on
  ImageNet lite0 features of 96 px crops; the share of test boxes each labels right.

Not part of the test suite; it chose nothing (BENCHMARKS.md, "A box head that cannot die").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_detection_photos  # noqa: E402
import detection_scenes  # noqa: E402
import timm  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from ml.detection import detector as detector_module  # noqa: E402
from ml.detection.detector import (  # noqa: E402
    DetectionPredictor,
    _load_examples,
    _look_spec,
    _looked,
    _predict_tensors,
    _seen,
    fit_detector,
)
from ml.detection.evaluate import evaluate_detections, iou  # noqa: E402
from ml.detection.postprocess import pooled  # noqa: E402
from ml.detection.second_look import CHOICES, STRIDES, jittered  # noqa: E402
from ml.models import PACKAGE_ARCHITECTURE, load_package_weights  # noqa: E402


def confusion(truth, predicted, num_labels: int) -> np.ndarray:
    """Rows: true labels; columns: the label of the most probable prediction overlapping the true
    box at IoU >= 0.5, the last column when none does."""
    table = np.zeros((num_labels, num_labels + 1), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        boxes = np.asarray(p["boxes"], dtype=np.float64).reshape(-1, 4)
        scores, labels = np.asarray(p["scores"]), np.asarray(p["labels"])
        for box, label in zip(t["boxes"], t["labels"], strict=True):
            overlapping = np.flatnonzero(iou(box, boxes) >= 0.5) if len(boxes) else []
            if len(overlapping) == 0:
                table[label, num_labels] += 1
            else:
                table[label, labels[overlapping[np.argmax(scores[overlapping])]]] += 1
    return table


def _flipped(image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    width = image.shape[-1]
    mirrored = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
    return image.flip(-1), mirrored


def detector_features(body, image: torch.Tensor, boxes: torch.Tensor) -> np.ndarray:
    """The detector's backbone levels pooled inside each box and concatenated, as the second look
    pools them (``postprocess.pooled``)."""
    x = (image.float() / 255 - 0.5) / 0.5  # the lite0 weights' normalisation, as FCOS's transform
    with torch.no_grad():
        levels = [level[0].numpy() for level in body(x[None])]
    return pooled(levels, boxes.numpy(), STRIDES)


def crop_features(net, image: torch.Tensor, boxes: torch.Tensor, side: int = 96) -> np.ndarray:
    """ImageNet lite0's pooled features of each box's crop (10 % margin), resized to ``side``."""
    x = image.float() / 255
    crops = []
    for x0, y0, x1, y1 in boxes.tolist():
        w, h = x1 - x0, y1 - y0
        left, top = max(0, int(x0 - 0.1 * w)), max(0, int(y0 - 0.1 * h))
        right, bottom = min(x.shape[2], int(x1 + 0.1 * w) + 1), min(x.shape[1], int(y1 + 0.1 * h) + 1)
        crop = x[None, :, top:bottom, left:right]
        resized = torch.nn.functional.interpolate(crop, size=(side, side), mode="bilinear", antialias=True)
        crops.append(resized)
    with torch.no_grad():
        batch = (torch.cat(crops) - 0.5) / 0.5
        return net.forward_head(net.forward_features(batch), pre_logits=True).numpy()


def second_look(features, cache, mask, rng: np.random.Generator) -> dict[float, float]:
    """Test-box accuracy of a logistic regression on ``features`` per regularisation C."""
    train_x, train_y, test_x, test_y = [], [], [], []
    for item, is_test in zip(cache, mask, strict=True):
        if item is None or len(item[1]) == 0:
            continue
        image, boxes, labels = item
        if is_test:
            test_x.append(features(image, boxes))
            test_y += labels.tolist()
            continue
        for flip in (False, True):
            view, view_boxes = _flipped(image, boxes) if flip else (image, boxes)
            moved = torch.from_numpy(jittered(view_boxes.numpy(), rng)).float()
            for b in (view_boxes, moved):
                train_x.append(features(view, b))
                train_y += labels.tolist()
    train_x, test_x = np.concatenate(train_x), np.concatenate(test_x)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    scores = {}
    for c in (0.01, 0.1, 1.0):
        model = LogisticRegression(C=c, max_iter=3000).fit((train_x - mean) / std, train_y)
        scores[c] = round(float(model.score((test_x - mean) / std, test_y)), 3)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("seed", type=int)
    parser.add_argument("--set", action="append", default=[], help="DetectConfig field=value")
    parser.add_argument(
        "--kind",
        choices=("hard", "easy"),
        default="hard",
        help="easy: the easy development scenes (96 training / 24 test), as the API's",
    )
    parser.add_argument(
        "--no-features", action="store_true", help="skip the logistic regressions on true boxes"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = detection_scenes.label_names(args.kind)
    labels = [{"id": name, "name": name} for name in names]
    sizes = (160, 60) if args.kind == "hard" else (96, 24)
    examples, mask = bench_detection_photos.seed_scenes(*sizes, args.kind, "dev", args.seed)
    config = bench_detection_photos.default_config(args.seed, 1, None)
    for key, value in bench_detection_photos.overrides(args.set).items():
        setattr(config, key, value)

    fitted = {}  # the second look's classifier, kept or not: its test-side scores per choice below

    def capturing(*args, **kwargs):
        answer = original(*args, **kwargs)
        fitted["look"] = answer[3]
        return answer

    original = detector_module._second_look
    detector_module._second_look = capturing
    with tempfile.TemporaryDirectory() as out:
        result = fit_detector(examples, mask, labels, config, out_dir=out)
        model = DetectionPredictor.load(out, mode="eager").model.eval()
    saved_look = fitted.get("look")
    m = result.metrics
    print(f"seed {args.seed}: mAP@0.5 {m['map50']:.3f}, validation {m['val_map50']}")

    print("second look as trained:", m.get("second_look"))

    cache = _load_examples(examples, m["input_size"])
    test_cache = [item for item, is_test in zip(cache, mask, strict=True) if is_test]
    predicted = _predict_tensors(model, [item[0] for item in test_cache], torch.device("cpu"))
    truth = [{"boxes": item[1].tolist(), "labels": item[2].tolist()} for item in test_cache]
    if saved_look:
        seen = _seen(model, [item[0] for item in test_cache], torch.device("cpu"))
        by_choice = {}
        for own, weight in CHOICES:
            found = _looked(seen, _look_spec(model, {**saved_look, "own": own, "weight": weight}))
            by_choice[f"{own}/{weight}"] = round(evaluate_detections(truth, found, len(names))["map50"], 3)
        print("test mAP@0.5 with the second look per own/weight (without it: below):", by_choice)
    labelled = evaluate_detections(truth, predicted, len(names))["map50"]
    one = [{"boxes": t["boxes"], "labels": [0] * len(t["labels"])} for t in truth]
    agnostic = [{**p, "labels": [0] * len(p["labels"])} for p in predicted]
    agnostic_map = evaluate_detections(one, agnostic, 1)["map50"]
    print(f"mAP@0.5 with labels {labelled:.3f}, class-agnostic {agnostic_map:.3f}")
    table = confusion(truth, predicted, len(names))
    right = int(np.trace(table[:, : len(names)]))
    print(f"true boxes whose most probable overlapping prediction has their label: {right} of {table.sum()}")
    print("rows true, columns predicted (last: missed):", *names)
    print(table)

    if args.no_features:
        return
    rng = np.random.default_rng(0)
    body = model.backbone.body
    own = second_look(lambda i, b: detector_features(body, i, b), cache, mask, rng)
    print("second look, the detector's features: test-box accuracy per C", own)
    imagenet = timm.create_model(PACKAGE_ARCHITECTURE, pretrained=False)
    load_package_weights(imagenet)
    imagenet.eval()
    crops = second_look(lambda i, b: crop_features(imagenet, i, b), cache, mask, rng)
    print("second look, ImageNet lite0 on 96 px crops: test-box accuracy per C", crops)


if __name__ == "__main__":
    main()
