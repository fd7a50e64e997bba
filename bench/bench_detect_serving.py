"""Detect latency, torch against ONNX Runtime, in the same run: HTTP p50 under gunicorn and the same
work in-process (decode + forward + decoding/NMS), 1 and 10 records.

    VF_INFERENCE_THREADS=1 .venv/bin/python bench/bench_detect_serving.py [--scenes 120] [--epochs 6]
        [--repeats 20] [--size 384] [--look]

Prepares everything itself: a temporary VF_VAR_DIR with a SQLite database (migrated), a user with a
token, a detection task with two labels, and a TRAINED version fitted by ``ml.detection.detector``
on ``--scenes`` seeded scenes (tests/detection/scenes.py, ``--size`` x 3/4 px; the project's
VF_DETECTION_INPUT_SIZE, ``--epochs`` epochs: the weights matter for how many boxes reach the NMS,
not for the shapes), exported to model.onnx (ml/detection/export.py). Then, for each runtime
(``torch``: VF_INFERENCE_MODE=eager, the torch model as before; ``onnx``: the version's model.onnx
with the numpy decoding, a batch in VF_INFERENCE_PASSES passes side by side as installed;
``onnx-1-pass``: the same, one pass at a time, as before those passes), all loaded and all servers
started first, then measured in interleaved rounds (``--repeats``; each runtime in-process and
over HTTP, 1 and 10 records), so a neighbour's load on a shared machine falls on all of them alike:

- in-process: ``DetectionPredictor.load(folder, mode=...)`` in this process with the same thread
  count, the fresh scenes' JPEG bytes through ``preprocess`` + ``predict_batch`` with detect's
  default ``keep_prob`` (0.3) as ``min_prob`` (what the service does with a record once it is
  read), p50;
- HTTP: gunicorn (1 worker, 4 threads) on a free loopback port, ``POST /detection/v2/detect/`` with
  1 and 10 base64 records, p50, and its ratio to the in-process p50 of the same runtime.

Also how far the runtimes' answers are apart on the same records (boxes at prob >= 0.3 matched by
label at IoU >= 0.5 and 0.9) and each runtime's mAP@0.5 on 60 fresh scenes.
Goals (issue 23): detect 1 record <= 25 ms, 10 records <= 150 ms over HTTP, each <= 1.25 x the
same runtime in-process. Also the floor of any API call, an authenticated ``GET
detection/v2/task/<id>/`` on the ONNX server in the same rounds, against detect's cost over its
in-process work. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_classify  # noqa: E402  (its gunicorn start and HTTP call)

THREADS = int(os.environ.get("VF_INFERENCE_THREADS", "0")) or None
# this benchmark's name -> (VF_INFERENCE_MODE, VF_INFERENCE_PASSES; None = the setting's default, the
# cores over VF_INFERENCE_THREADS): the service as installed, and ONNX Runtime one pass at a time as
# before passes side by side (ml/inference.py, ``run_in_passes``).
RUNTIMES = {"torch": ("eager", None), "onnx": ("onnx", None), "onnx-1-pass": ("onnx", 1)}
KEEP = 0.3  # detect's default keep_prob, which the service hands the detector (apps/detection/prediction.py)


def free_port() -> int:
    return bench_classify.free_port()


def jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def prepare(args, var: str) -> dict:
    """Database, user, token, task and its TRAINED, exported version; ids and the version folder."""
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from apps.detection.services import detection_label_attach, detection_label_create, detection_task_create
    from apps.tasks.models import Task
    from apps.training import artifacts
    from apps.training.models import ModelVersion
    from apps.workspaces import services as workspace_services
    from ml.detection.detector import DetectConfig, DetectionExample, fit_detector
    from ml.detection.export import export_detector
    from tests.detection.scenes import png, scenes
    from tests.factories import UserFactory

    call_command("migrate", verbosity=0)
    user = UserFactory()
    workspace = workspace_services.workspace_ensure_default(user=user)
    token = workspace_services.token_get_or_create(user=user)
    task = detection_task_create(workspace=workspace, owner=user, name="Shapes")
    labels = []
    for name in ("square", "disc"):
        label = detection_label_create(workspace=workspace, name=name)
        detection_label_attach(task=task, label=label)
        labels.append({"id": str(label.pk), "name": name})

    drawn = scenes(args.scenes, seed=0, size=(args.size, args.size * 3 // 4))
    examples = [DetectionExample(image=png(image), boxes=b, labels=lab) for image, b, lab in drawn]
    out = Path(var) / "trained"
    config = DetectConfig(
        input_size=settings.VF_DETECTION_INPUT_SIZE, epochs=args.epochs, seed=0, num_threads=THREADS
    )
    started = time.perf_counter()
    result = fit_detector(examples, [i % 5 == 0 for i in range(len(examples))], labels, config, out_dir=out)
    fit_s = time.perf_counter() - started
    if args.look and not (result.metrics.get("second_look") or {}).get("weight"):
        force_look(out, [e for i, e in enumerate(examples) if i % 5])
    record = export_detector(out)
    metrics = {**result.metrics, "serving": record}
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status=ModelVersion.Status.TRAINED, metrics=metrics
    )
    version.artifact_path = artifacts.save_artifacts(version, out)
    version.save(update_fields=["artifact_path"])
    Task.objects.filter(pk=task.pk).update(production_version=1, last_train_status="TRAINED")
    print(
        f"trained {metrics['epochs']} epochs in {fit_s:.1f} s (mAP@0.5 {metrics['map50']:.3f} on "
        f"{metrics['test_images']} scenes), input {metrics['input_size']} px; ONNX export "
        f"{record['export_seconds']:.1f} s, {record['input']}"
    )
    return {"token": str(token), "task_id": str(task.pk), "dir": str(out)}


def force_look(folder: Path, training) -> None:
    """Give the version a second look at its labels (ml/detection/second_look.py) that its
    validation slice did not keep: a classifier fitted on its training boxes, with own 0.5 and
    weight 0.5 (the pair most hard development seeds chose), so that its serving cost is timed."""
    import torch

    from ml.detection import detector

    predictor = detector.DetectionPredictor.load(folder, mode="eager", num_threads=THREADS)
    cache = detector._load_examples(training, predictor.input_size)
    fitted = detector._labeller(
        predictor.model, cache, range(len(cache)), len(predictor.labels), 0, torch.device("cpu")
    )
    meta = json.loads((folder / "model.json").read_text())
    meta["second_look"] = {**fitted, "own": 0.5, "weight": 0.5}
    (folder / "model.json").write_text(json.dumps(meta))
    print("the version's second look: fitted here (its validation slice kept none)")


def in_process(predictor, records: list[bytes]) -> list[dict]:
    """The service's work on read records, in this process: decode, then the detector with detect's
    default keep_prob as its cut-off."""
    return predictor.predict_batch([predictor.preprocess(d) for d in records], min_prob=KEEP)


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def start_server(port: int, mode: str, passes: int | None) -> subprocess.Popen:
    env = dict(os.environ)
    if passes is not None:
        env["VF_INFERENCE_PASSES"] = str(passes)
    return bench_classify.start_server(port, env, mode)


def call(port: int, token: str, body: bytes) -> float:
    return bench_classify.post(port, token, "/detection/v2/detect/", body)[0]


def floor_call(port: int, token: str, task_id: str) -> float:
    """An authenticated ``GET detection/v2/task/<id>/`` (token, workspace and one task row): what any
    call of the API costs before its own work, the floor of detect's cost over its in-process work."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    connection.request("GET", f"/detection/v2/task/{task_id}/", headers={"Authorization": f"Token {token}"})
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}")
    return elapsed


def agreement(a: list[dict], b: list[dict], overlap: float) -> tuple[int, int]:
    """(boxes of ``a`` at prob >= 0.3 with a same-label box of ``b`` at IoU >= ``overlap``, boxes of
    ``a`` at prob >= 0.3)."""
    from ml.detection.evaluate import iou

    matched = total = 0
    for mine, theirs in zip(a, b, strict=True):
        for found in (o for o in mine["objects"] if o["prob"] >= 0.3):
            total += 1
            same = [o["bound_box"] for o in theirs["objects"] if o["label"] == found["label"]]
            matched += bool(same) and iou(found["bound_box"], np.array(same, dtype=float)).max() >= overlap
    return matched, total


def map50(folder: str, mode: str, drawn) -> float:
    """mAP@0.5 of the runtime on fresh scenes (``drawn``: image bytes, boxes, labels)."""
    from ml.detection.detector import DetectionPredictor
    from ml.detection.evaluate import evaluate_detections

    predictor = DetectionPredictor.load(folder, mode=mode, num_threads=THREADS)
    answers = predictor.predict([data for data, _, _ in drawn])
    predicted = [
        {
            "boxes": [o["bound_box"] for o in a["objects"]],
            "scores": [o["prob"] for o in a["objects"]],
            "labels": [o["label"] for o in a["objects"]],
        }
        for a in answers
    ]
    truth = [{"boxes": boxes, "labels": labels} for _, boxes, labels in drawn]
    return evaluate_detections(truth, predicted, 2, threshold=0.3)["map50"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", type=int, default=384, help="scene width (height is 3/4 of it)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--look",
        action="store_true",
        help="serve a version with a second look at its labels (fitted here when training kept none)",
    )
    args = parser.parse_args()

    var = tempfile.mkdtemp(prefix="vf-bench-detect-serving-")
    os.environ.update({"VF_VAR_DIR": var, "DJANGO_SETTINGS_MODULE": "config.settings"})
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("VF_LOG_LEVEL", "WARNING")
    ids = prepare(args, var)
    from tests.detection.scenes import scenes

    fresh = [jpeg(image) for image, _, _ in scenes(10, seed=1000, size=(args.size, args.size * 3 // 4))]
    from django.conf import settings

    print(
        f"threads {THREADS or 'default'}, passes side by side {settings.VF_INFERENCE_PASSES}; "
        f"records: {args.size} x {args.size * 3 // 4} JPEGs"
    )

    from ml.detection.detector import DetectionPredictor

    # Everything loaded and started first, then measured in interleaved rounds (each round: every
    # runtime in-process and over HTTP, 1 and 10 records), so a neighbour's load on this shared
    # machine falls on all of them alike.
    predictors, servers, bodies = {}, {}, {}
    for count in (1, 10):
        records = [{"_base64": base64.b64encode(d).decode()} for d in fresh[:count]]
        bodies[count] = json.dumps({"task_id": ids["task_id"], "records": records}).encode()
    try:
        for name, (mode, passes) in RUNTIMES.items():
            predictors[name] = DetectionPredictor.load(
                ids["dir"], mode=mode, num_threads=THREADS, passes=passes or settings.VF_INFERENCE_PASSES
            )
            assert (predictors[name].onnx is not None) == (mode == "onnx")
            port = free_port()
            servers[name] = (port, start_server(port, mode, passes))
            for count in (1, 10):
                call(port, ids["token"], bodies[count])  # loads the version, warms up
        samples = {
            (name, where, count): [] for name in RUNTIMES for where in ("local", "http") for count in (1, 10)
        }
        floor: list[float] = []
        for _ in range(args.repeats):
            floor.append(floor_call(servers["onnx"][0], ids["token"], ids["task_id"]))
            for name, predictor in predictors.items():
                for count in (1, 10):
                    batch = fresh[:count]
                    samples[name, "local", count].append(timed(lambda p=predictor, b=batch: in_process(p, b)))
                    port = servers[name][0]
                    samples[name, "http", count].append(call(port, ids["token"], bodies[count]))
    finally:
        for _, process in servers.values():
            process.terminate()
            process.wait(timeout=30)
    answers = {name: p.predict_batch([p.preprocess(d) for d in fresh]) for name, p in predictors.items()}
    rows = {
        name: tuple(
            {count: statistics.median(samples[name, where, count]) for count in (1, 10)}
            for where in ("local", "http")
        )
        for name in RUNTIMES
    }
    print(
        "\n| runtime | detect 1: in-process / HTTP p50 | detect 10: in-process / HTTP p50 "
        "| HTTP / in-process (1; 10) |"
    )
    print("| --- | --- | --- | --- |")
    for name, (local, remote) in rows.items():
        print(
            f"| {name} | {local[1] * 1000:.1f} / {remote[1] * 1000:.1f} ms | "
            f"{local[10] * 1000:.1f} / {remote[10] * 1000:.1f} ms | "
            f"{remote[1] / local[1]:.2f}; {remote[10] / local[10]:.2f} |"
        )
    onnx_local, onnx_remote = rows["onnx"]
    empty = statistics.median(floor)
    print(
        "\nthe floor, an authenticated GET detection/v2/task/<id>/ on the ONNX server: "
        f"p50 {empty * 1000:.1f} ms; "
        f"detect 1 record costs {(onnx_remote[1] - onnx_local[1]) * 1000:.1f} ms over its in-process work, "
        f"{(onnx_remote[1] - onnx_local[1] - empty) * 1000:.1f} ms above the floor; the floor alone is "
        f"{empty / onnx_local[1]:.2f} of the in-process work (1 record)"
    )
    torch_local, torch_remote = rows["torch"]
    print(
        f"\nONNX / torch: in-process {onnx_local[1] / torch_local[1]:.2f} (1), "
        f"{onnx_local[10] / torch_local[10]:.2f} (10); HTTP {onnx_remote[1] / torch_remote[1]:.2f} (1), "
        f"{onnx_remote[10] / torch_remote[10]:.2f} (10)"
    )
    one_local, one_remote = rows["onnx-1-pass"]
    print(
        f"passes side by side / one pass at a time: in-process {onnx_local[1] / one_local[1]:.2f} (1), "
        f"{onnx_local[10] / one_local[10]:.2f} (10); HTTP {onnx_remote[1] / one_remote[1]:.2f} (1), "
        f"{onnx_remote[10] / one_remote[10]:.2f} (10); the same objects: "
        f"{answers['onnx'] == answers['onnx-1-pass']}"
    )
    for overlap in (0.5, 0.9):
        there, total = agreement(answers["torch"], answers["onnx"], overlap)
        back, total_back = agreement(answers["onnx"], answers["torch"], overlap)
        print(
            f"answers: {there}/{total} torch boxes (prob >= 0.3) found by ONNX at IoU >= {overlap}, "
            f"{back}/{total_back} the other way"
        )
    drawn = [(jpeg(i), b, lab) for i, b, lab in scenes(60, seed=2000, size=(args.size, args.size * 3 // 4))]
    print(
        f"mAP@0.5 on 60 fresh scenes: torch {map50(ids['dir'], 'eager', drawn):.3f}, "
        f"ONNX {map50(ids['dir'], 'onnx', drawn):.3f}"
    )


if __name__ == "__main__":
    main()
