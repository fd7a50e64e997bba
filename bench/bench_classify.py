"""Classify benchmark: the whole HTTP round trip under gunicorn against the same model run the same
way in-process (like for like: jit server against jit in-process, onnx against onnx).

    VF_INFERENCE_THREADS=1 .venv/bin/python bench/bench_classify.py [--modes onnx,onnx-fp32,jit]
        [--model lite0|photos] [--repeats 30] [--seconds 15] [--clients 4]

Modes: ``onnx`` serves the version's model.onnx as training chose it (INT8 where it agreed with
FP32, else FP32; the report says which), ``onnx-fp32`` the same version's FP32 export (a second
version holding it), ``jit``/``eager``/``bf16`` the torch model (ml/inference.py).
``--model photos``: the version the default recipe trains (architecture auto, 120 s budget) on the
development photo set's training side (``bench_quality.photos``, seed 0's 80 %), called with that
set's test photos; ``lite0`` (default): a tf_efficientnet_lite0 at 224 px trained one epoch.

(VF_INFERENCE_THREADS: torch threads of the baseline and of each server, default all cores; on a
machine shared with other jobs use 1, see BENCHMARKS.md. VF_INFERENCE_PASSES: ONNX Runtime passes
of a batch side by side in both, default the cores over the threads; 1 = one after another.)

Prepares everything itself: a temporary VF_VAR_DIR with a SQLite database (migrated), a user with a
token, a multi_class task with a version trained by ``ml.recognition.recipe.fit`` (the default architecture,
one short epoch: the weights do not matter for speed, the shapes do), then starts gunicorn on a
free loopback port for each inference mode and measures, with the server otherwise idle:

- latency p50/p99 of ``POST /recognition/v2/classify/`` with 1 and with 10 base64 records
  (512 px JPEGs, or the photo set's ~300 x 170 px JPEGs), and throughput (records/s) under
  concurrent clients for a bounded time, in turns
  with the same mode's in-process rate (one batch of 10 after another);
- in the same run, with the server idle, the baseline of each mode: decoding + resizing the same
  JPEGs (``ml.data.preprocess``) and the forward of the same batch by a predictor loaded in this
  process with the same inference mode (``Predictor.load(..., mode=...)``) and thread count; and,
  for reference, the raw eager timm forward, and the reading split into decoding (JPEG, at the
  reduced scale ``Image.draft`` allows) and resizing.

Each server figure is printed with its ratio to the baseline of its own mode. A mode the machine
cannot run (bf16 without AMX) falls back to jit in both, and the report says so. Goal: 10 records
round trip <= 1.25 x (decode + forward). Not part of the test suite; takes a few minutes.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THREADS = int(os.environ.get("VF_INFERENCE_THREADS", os.cpu_count() or 1))
# ONNX Runtime passes of one batch side by side, in-process as the servers have them (config/settings.py).
PASSES = int(os.environ.get("VF_INFERENCE_PASSES", max(1, (os.cpu_count() or 1) // THREADS)))
ARCHITECTURE = os.environ.get("VF_TRAIN_ARCHITECTURE", "tf_efficientnet_lite0")
# A mode of this benchmark -> (VF_INFERENCE_MODE of its server, the version it calls).
MODES = {"onnx": ("onnx", 1), "onnx-fp32": ("onnx", 2), "jit": ("jit", 1), "eager": ("eager", 1),
         "bf16": ("bf16", 1), "auto": ("auto", 1)}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def photo(rng: np.random.Generator, size: int = 512) -> bytes:
    """A 512 px JPEG with photo-like content (smooth gradients, blobs, noise), ~40-60 KB."""
    from PIL import Image, ImageDraw, ImageFilter

    base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y, r = rng.integers(0, size, 2).tolist() + [int(rng.integers(20, 120))]
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.integers(0, 255, 3).tolist()))
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (size, size, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def settle() -> None:
    """Let the previous party's OpenMP threads stop spinning (libgomp spins for a while after a
    parallel region), so the baseline and the servers never measure each other's idle spin."""
    time.sleep(0.3)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# --------------------------------------------------------------------------- set-up (Django)


def train_version(out_dir: Path, model: str, images: list[bytes], labels: list[dict], y=None) -> dict:
    """Fit the benchmark's version into ``out_dir``; its metrics."""
    from ml.config import TrainConfig
    from ml.recognition.recipe import fit

    if model == "photos":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_quality

        train, test = bench_quality.split(y, 0)
        mask = np.zeros(len(images), dtype=bool)
        mask[test] = True
        items = [(images[i], int(y[i])) for i in range(len(images))]
        config = TrainConfig(time_budget_s=120, num_threads=THREADS)
    else:
        items = [(images[i % len(images)], i % 5) for i in range(20)]
        mask = np.array([i % 5 == 0 for i in range(20)])
        config = TrainConfig(architecture=ARCHITECTURE, input_size=224, epochs=1, head_warmup=False)
    metrics = fit(items, list(mask), labels, "multi_class", config=config, out_dir=str(out_dir)).metrics
    # The INT8 attempt the service runs after TRAINED (apps/training model_version_serve_int8); an
    # accepted INT8 file becomes the folder's model.onnx, as in the service's model cache.
    from ml.recognition.serving import try_int8

    record = try_int8(
        out_dir,
        training_images=[image for (image, _), test in zip(items, mask, strict=True) if not test],
        test_images=[image for (image, _), test in zip(items, mask, strict=True) if test],
        num_threads=THREADS,
    )
    metrics["serving"] = {**metrics["serving"], **record}
    if record.get("precision") == "int8":
        os.replace(out_dir / record["file"], out_dir / "model.onnx")
    return metrics


def prepare(var_dir: Path, model: str, images: list[bytes], label_names: list[str], y=None) -> dict:
    """Migrate a fresh database, create a user, token, task and its TRAINED versions: 1 as trained
    (model.onnx as training chose it), 2 the same weights with the FP32 export; return ids."""
    import shutil

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from apps.labels.models import Label
    from apps.tasks.models import Task
    from apps.training import artifacts
    from apps.training.models import ModelVersion
    from apps.workspaces import services
    from ml.recognition.export import export_onnx

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-password-1")
    workspace = services.workspace_ensure_default(user=user)
    token = services.token_get_or_create(user=user)
    task = Task.objects.create(workspace=workspace, owner=user, name="bench", type="multi_class")

    labels = [Label.objects.create(workspace=workspace, name=name) for name in label_names]
    task.labels.add(*labels)
    started = time.perf_counter()
    out_dir = var_dir / "trained"
    metrics = train_version(out_dir, model, images, [{"id": str(x.id), "name": x.name} for x in labels], y)
    trained_s = time.perf_counter() - started
    fp32_dir = var_dir / "trained-fp32"
    shutil.copytree(out_dir, fp32_dir)
    export_onnx(fp32_dir)
    dirs = {}
    for number, folder in ((1, out_dir), (2, fp32_dir)):
        version = ModelVersion.objects.create(
            workspace=workspace, task=task, version=number, train_status=ModelVersion.Status.TRAINED,
            metrics=metrics,
        )  # fmt: skip
        version.artifact_path = artifacts.save_artifacts(version, folder)
        version.save(update_fields=["artifact_path"])
        dirs[number] = str(folder)
    Task.objects.filter(pk=task.pk).update(production_version=1, last_train_status="TRAINED")
    serving = metrics["serving"]
    print(
        f"prepared database and a trained version ({metrics.get('selected')}, "
        f"{metrics.get('input_size')} px) in {trained_s:.1f} s, of which {serving['export_seconds']:.1f} s "
        f"FP32 export (then {serving.get('int8_seconds', 0):.1f} s INT8 attempt, after TRAINED in the "
        f"service); served: {serving['precision']} "
        f"(agreement {serving.get('agreement')}, {serving.get('reason', '')})"
    )
    return {"token": str(token), "task_id": str(task.pk), "dirs": dirs, "serving": serving}


# --------------------------------------------------------------------------- baseline


class Baseline:
    """In-process: decode + resize (ml.data.preprocess, with Image.draft), then the forward of a
    predictor loaded with each server's inference mode; the raw eager timm forward for reference."""

    def __init__(self, dirs: dict[int, str], modes: list[str]):
        import torch

        from ml.inference import amx_available
        from ml.recognition.predictor import Predictor

        torch.set_num_threads(THREADS)
        self.torch = torch
        self.predictor = Predictor.load(dirs[1], device="cpu")  # eager, untouched: the raw forward
        self.modes = {}
        for mode in modes:
            real, number = MODES[mode]
            self.modes[mode] = Predictor.load(
                dirs[number], device="cpu", mode=real, num_threads=THREADS, passes=PASSES
            )
        self.fallback = {mode: MODES[mode][0] == "bf16" and not amx_available() for mode in modes}

    def decode(self, batch: list[bytes], draft: bool = True):
        from PIL import Image

        from ml.data import preprocess

        p = self.predictor
        if not draft:  # a full-size decode first: what preprocess does without Image.draft
            batch = [Image.open(io.BytesIO(data)).convert("RGB") for data in batch]
        return self.torch.stack([preprocess(data, p.input_size, p.interpolation, p.resize) for data in batch])

    def split(self, batch: list[bytes]) -> tuple[float, float]:
        """(decoding seconds, resizing seconds) of ``decode``'s work, apart."""
        from PIL import Image

        from ml.data import preprocess
        from ml.images import draft, to_rgb

        p = self.predictor
        t0 = time.perf_counter()
        decoded = [to_rgb(draft(Image.open(io.BytesIO(data)), p.input_size)) for data in batch]
        for image in decoded:
            image.load()
        t1 = time.perf_counter()
        for image in decoded:
            preprocess(image, p.input_size, p.interpolation, p.resize)
        return t1 - t0, time.perf_counter() - t1

    def run(self, batch: list[bytes], mode: str | None = None) -> tuple[float, float, object]:
        """(decode seconds, forward seconds, probabilities): the raw eager forward, or ``mode``'s
        predictor (its forward, softmax included, as the server runs it)."""
        from ml.data import normalize
        from ml.models import features_and_logits

        p = self.predictor
        with self.torch.inference_mode():
            t0 = time.perf_counter()
            x = self.decode(batch)
            t1 = time.perf_counter()
            if mode is None:
                _, logits = features_and_logits(p.model, normalize(x, p.mean, p.std))
                probs = logits.softmax(1).numpy()
            else:
                probs = np.array([row["probs"] for row in self.modes[mode].predict_tensor(x)])
            t2 = time.perf_counter()
        return t1 - t0, t2 - t1, probs


# --------------------------------------------------------------------------- server and client


def start_server(port: int, env: dict, mode: str) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [str(gunicorn), "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "-k", "gthread",
         "--threads", "4", "--timeout", "300", "--log-level", "warning"],
        cwd=ROOT, env={**env, "VF_INFERENCE_MODE": mode},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("gunicorn did not start")


def call(port: int, token: str, body: bytes) -> tuple[float, dict]:
    return post(port, token, "/recognition/v2/classify/", body)


def post(port: int, token: str, path: str, body: bytes) -> tuple[float, dict]:
    """POST ``body`` (JSON) to ``path`` with the token: the seconds it took and the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    connection.request(
        "POST",
        path,
        body=body,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    payload = response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {payload[:300]!r}")
    return elapsed, json.loads(payload)


def body_for(task_id: str, images: list[bytes], version: int = 1) -> bytes:
    records = [{"_base64": base64.b64encode(data).decode(), "_id": n} for n, data in enumerate(images)]
    return json.dumps({"task_id": task_id, "version": version, "records": records}).encode()


def probabilities(result: dict, label_ids: list[str]) -> np.ndarray:
    rows = []
    for record in sorted(result["records"], key=lambda r: r["_id"]):
        by_id = {label["id"]: label["prob"] for label in record["labels"]}
        rows.append([by_id[i] for i in label_ids])
    return np.asarray(rows)


THROUGHPUT_ROUNDS = 5  # turns of in-process baseline and server in a throughput measurement


def throughput(port: int, token: str, body: bytes, records: int, clients: int, seconds: float) -> float:
    done = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker():
        while time.monotonic() < deadline:
            call(port, token, body)
            with lock:
                done[0] += records

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0] / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modes", default="onnx,onnx-fp32,jit", help=f"which of {sorted(MODES)} to compare")
    parser.add_argument("--model", default="lite0", choices=["lite0", "photos"], help="the version served")
    parser.add_argument("--repeats", type=int, default=30, help="rounds of latency measurements")
    parser.add_argument("--seconds", type=float, default=15, help="duration of each throughput run")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients in the throughput runs")
    args = parser.parse_args()
    modes = args.modes.split(",")

    var_dir = Path(tempfile.mkdtemp(prefix="vf-bench-"))
    env = {
        **os.environ,
        "VF_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "VF_INFERENCE_THREADS": str(THREADS),
        "VF_THROTTLE_USER": "1000000/min",
        "VF_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    if args.model == "photos":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_quality

        every, y, names = bench_quality.photos()
        ids = prepare(var_dir, "photos", every, names, y)
        images = [every[i] for i in bench_quality.split(y, 0)[1][:10]]  # test photos, never trained on
    else:
        rng = np.random.default_rng(0)
        images = [photo(rng) for _ in range(10)]
        ids = prepare(var_dir, "lite0", images, [f"class {n}" for n in range(5)])
    base = Baseline(ids["dirs"], modes)
    label_ids = [label["id"] for label in base.predictor.labels]
    bodies = {
        (mode, count): body_for(ids["task_id"], images[:count], MODES[mode][1])
        for mode in modes
        for count in (1, 10)
    }

    servers = {}
    try:
        for mode in modes:
            port = free_port()
            servers[mode] = (port, start_server(port, env, MODES[mode][0]))
            for _ in range(2):  # the first call loads, traces and warms the version up
                call(port, ids["token"], bodies[(mode, 10)])

        # Rounds interleave the baseline and every server, so a noisy neighbour on the machine
        # weighs on all of them alike.
        who_all = [
            "decode",
            "forward",
            "nodraft",
            "jpeg",
            "resize",
            *modes,
            *(f"local-{mode}" for mode in modes),
        ]
        timing: dict = {(who, n): [] for n in (1, 10) for who in who_all}
        agreement = {}
        for count in (1, 10):
            for _ in range(3):
                base.run(images[:count])
                for mode in modes:
                    base.run(images[:count], mode)
        for _ in range(args.repeats):
            for count in (1, 10):
                settle()
                decode_s, forward_s, probs = base.run(images[:count])
                timing[("decode", count)].append(decode_s)
                timing[("forward", count)].append(forward_s)
                settle()
                started = time.perf_counter()
                base.decode(images[:count], draft=False)
                timing[("nodraft", count)].append(time.perf_counter() - started)
                settle()
                jpeg_s, resize_s = base.split(images[:count])
                timing[("jpeg", count)].append(jpeg_s)
                timing[("resize", count)].append(resize_s)
                for mode in modes:
                    settle()
                    decode_s, forward_s, _ = base.run(images[:count], mode)
                    timing[(f"local-{mode}", count)].append(decode_s + forward_s)
                    settle()
                    elapsed, result = call(servers[mode][0], ids["token"], bodies[(mode, count)])
                    timing[(mode, count)].append(elapsed)
                    if count == 10:
                        served = probabilities(result, label_ids)
                        agreement[mode] = (
                            bool((served.argmax(1) == probs.argmax(1)).all()),
                            float(np.abs(served - probs).max()),
                        )

        print(f"\nload average (1, 5, 15 min) after the latency rounds: {os.getloadavg()}")
        p = base.predictor
        what = "the photo set's test JPEGs" if args.model == "photos" else "512 px JPEGs"
        print(f"{p.meta['architecture']} at {p.input_size} px, {what}, {THREADS} threads per process;")
        print(f"version 1 serves {ids['serving']['precision']} (onnx); version 2 the FP32 export (onnx-fp32)")
        print("server: gunicorn 1 worker x 4 gthreads per mode; median (p50) of interleaved rounds")
        print("ratio: the server's p50 / the p50 of decode + forward in-process in the same mode\n")
        p50 = {key: percentile(values, 50) for key, values in timing.items()}
        for count in (1, 10):
            total = p50[("decode", count)] + p50[("forward", count)]
            print(
                f"{count:2d} records, reference: decode {p50[('decode', count)] * 1000:6.1f} ms "
                f"(JPEG decode {p50[('jpeg', count)] * 1000:.1f} + resize "
                f"{p50[('resize', count)] * 1000:.1f}; "
                f"no Image.draft: {p50[('nodraft', count)] * 1000:.1f} ms) + raw eager forward "
                f"{p50[('forward', count)] * 1000:6.1f} ms = {total * 1000:6.1f} ms"
            )
            for mode in modes:
                times = timing[(mode, count)]
                local = p50[(f"local-{mode}", count)]
                note = " (no AMX: runs as jit)" if base.fallback[mode] else ""
                print(
                    f"   {mode:9s}{note}: in-process {local * 1000:7.1f} ms; HTTP p50 "
                    f"{p50[(mode, count)] * 1000:7.1f} ms  p99 {percentile(times, 99) * 1000:7.1f} ms;"
                    f" ratio {p50[(mode, count)] / local:.2f}"
                )
        print()
        for mode in modes:
            same, diff = agreement[mode]
            print(f"predictions {mode:9s} vs eager baseline: same top-1 {same}, max |prob diff| {diff:.5f}")
        print()
        for mode in modes:
            # Server and baseline take turns in short slices, so both see the same neighbours.
            served = local = 0.0
            server_s = local_s = 0.0
            for _ in range(THROUGHPUT_ROUNDS):
                slice_s = args.seconds / THROUGHPUT_ROUNDS
                started = time.perf_counter()
                while time.perf_counter() - started < slice_s:
                    base.run(images, mode)
                    local += len(images)
                local_s += time.perf_counter() - started
                rate = throughput(
                    servers[mode][0], ids["token"], bodies[(mode, 10)], 10, args.clients, slice_s
                )
                served += rate * slice_s
                server_s += slice_s
            rate, base_rate = served / server_s, local / local_s
            print(
                f"throughput {mode:5s}, {args.clients} clients x 10 records for {args.seconds:g} s: "
                f"{rate:6.1f} records/s; in-process {mode} decode + forward, one batch of 10 after "
                f"another, {base_rate:6.1f} records/s (in {THROUGHPUT_ROUNDS} turns with the server); "
                f"ratio {rate / base_rate:.2f}"
            )
    finally:
        for _, process in servers.values():
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
