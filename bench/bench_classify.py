"""Classify benchmark: the whole HTTP round trip under gunicorn against the same model run the same
way in-process (like for like: jit server against jit in-process, bf16 against bf16).

    VF_INFERENCE_THREADS=1 .venv/bin/python bench/bench_classify.py [--modes jit,eager,bf16]
        [--repeats 30] [--seconds 15] [--clients 4]

(VF_INFERENCE_THREADS: torch threads of the baseline and of each server, default all cores; on a
machine shared with other jobs use 1, see BENCHMARKS.md.)

Prepares everything itself: a temporary VF_VAR_DIR with a SQLite database (migrated), a user with a
token, a multi_class task with a version trained by ``ml.recognition.recipe.fit`` (the default architecture,
one short epoch: the weights do not matter for speed, the shapes do), then starts gunicorn on a
free loopback port for each inference mode and measures, with the server otherwise idle:

- latency p50/p99 of ``POST /recognition/v2/classify/`` with 1 and with 10 base64 records
  (512 px JPEGs), and throughput (records/s) under concurrent clients for a bounded time, in turns
  with the same mode's in-process rate (one batch of 10 after another);
- in the same run, with the server idle, the baseline of each mode: decoding + resizing the same
  JPEGs (``ml.data.preprocess``) and the forward of the same batch by a predictor loaded in this
  process with the same inference mode (``Predictor.load(..., mode=...)``) and thread count; and,
  for reference, the raw eager timm forward.

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
ARCHITECTURE = os.environ.get("VF_TRAIN_ARCHITECTURE", "tf_efficientnet_lite0")


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


def prepare(var_dir: Path, images: list[bytes]) -> dict:
    """Migrate a fresh database, create a user, token, task and a TRAINED version; return ids."""
    import django

    django.setup()
    from django.core.management import call_command

    from apps.labels.models import Label
    from apps.tasks.models import Task
    from apps.training import artifacts
    from apps.training.models import ModelVersion
    from apps.workspaces import services
    from ml.config import TrainConfig
    from ml.recognition.recipe import fit

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-password-1")
    workspace = services.workspace_ensure_default(user=user)
    token = services.token_get_or_create(user=user)
    task = Task.objects.create(workspace=workspace, owner=user, name="bench", type="multi_class")
    labels = [Label.objects.create(workspace=workspace, name=f"class {n}") for n in range(5)]
    task.labels.add(*labels)

    started = time.perf_counter()
    items = [(images[i % len(images)], i % 5) for i in range(20)]
    config = TrainConfig(architecture=ARCHITECTURE, input_size=224, epochs=1, head_warmup=False)
    out_dir = var_dir / "trained"
    fit(items, [i % 5 == 0 for i in range(20)], [{"id": str(x.id), "name": x.name} for x in labels],
        "multi_class", config=config, out_dir=str(out_dir))  # fmt: skip
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status=ModelVersion.Status.TRAINED
    )
    version.artifact_path = artifacts.save_artifacts(version, out_dir)
    version.save(update_fields=["artifact_path"])
    Task.objects.filter(pk=task.pk).update(production_version=1, last_train_status="TRAINED")
    print(f"prepared database and a trained {ARCHITECTURE} version in {time.perf_counter() - started:.1f} s")
    return {"token": str(token), "task_id": str(task.pk), "model_dir": str(out_dir)}


# --------------------------------------------------------------------------- baseline


class Baseline:
    """In-process: decode + resize (ml.data.preprocess, with Image.draft), then the forward of a
    predictor loaded with each server's inference mode; the raw eager timm forward for reference."""

    def __init__(self, model_dir: str, modes: list[str]):
        import torch

        from ml.inference import amx_available
        from ml.recognition.predictor import Predictor

        torch.set_num_threads(THREADS)
        self.torch = torch
        self.predictor = Predictor.load(model_dir, device="cpu")  # eager, untouched: the raw forward
        self.modes = {mode: Predictor.load(model_dir, device="cpu", mode=mode) for mode in modes}
        self.fallback = {mode: mode in ("bf16", "auto") and not amx_available() for mode in modes}

    def decode(self, batch: list[bytes], draft: bool = True):
        from PIL import Image

        from ml.data import preprocess

        p = self.predictor
        if not draft:  # a full-size decode first: what preprocess does without Image.draft
            batch = [Image.open(io.BytesIO(data)).convert("RGB") for data in batch]
        return self.torch.stack([preprocess(data, p.input_size, p.interpolation) for data in batch])

    def run(self, batch: list[bytes], mode: str | None = None) -> tuple[float, float, object]:
        """(decode seconds, forward seconds, probabilities): the raw eager forward, or ``mode``'s
        predictor (its forward, softmax included, as the server runs it)."""
        from ml.data import normalize

        p = self.predictor
        with self.torch.inference_mode():
            t0 = time.perf_counter()
            x = self.decode(batch)
            t1 = time.perf_counter()
            if mode is None:
                probs = p.model(normalize(x, p.mean, p.std)).softmax(1).numpy()
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
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    connection.request(
        "POST",
        "/recognition/v2/classify/",
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


def body_for(task_id: str, images: list[bytes]) -> bytes:
    records = [{"_base64": base64.b64encode(data).decode(), "_id": n} for n, data in enumerate(images)]
    return json.dumps({"task_id": task_id, "records": records}).encode()


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
    parser.add_argument("--modes", default="jit,eager,bf16", help="VF_INFERENCE_MODE values to compare")
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
    rng = np.random.default_rng(0)
    images = [photo(rng) for _ in range(10)]
    ids = prepare(var_dir, images)
    base = Baseline(ids["model_dir"], modes)
    label_ids = [label["id"] for label in base.predictor.labels]
    bodies = {count: body_for(ids["task_id"], images[:count]) for count in (1, 10)}

    servers = {}
    try:
        for mode in modes:
            port = free_port()
            servers[mode] = (port, start_server(port, env, mode))
            for _ in range(2):  # the first call loads, traces and warms the version up
                call(port, ids["token"], bodies[10])

        # Rounds interleave the baseline and every server, so a noisy neighbour on the machine
        # weighs on all of them alike.
        who_all = ["decode", "forward", "nodraft", *modes, *(f"local-{mode}" for mode in modes)]
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
                for mode in modes:
                    settle()
                    decode_s, forward_s, _ = base.run(images[:count], mode)
                    timing[(f"local-{mode}", count)].append(decode_s + forward_s)
                    settle()
                    elapsed, result = call(servers[mode][0], ids["token"], bodies[count])
                    timing[(mode, count)].append(elapsed)
                    if count == 10:
                        served = probabilities(result, label_ids)
                        agreement[mode] = (
                            bool((served.argmax(1) == probs.argmax(1)).all()),
                            float(np.abs(served - probs).max()),
                        )

        print(f"\nload average (1, 5, 15 min) after the latency rounds: {os.getloadavg()}")
        print(f"{ARCHITECTURE} at 224 px, 512 px JPEGs, {THREADS} torch threads per process;")
        print("server: gunicorn 1 worker x 4 gthreads per mode; median (p50) of interleaved rounds")
        print("ratio: the server's p50 / the p50 of decode + forward in-process in the same mode\n")
        p50 = {key: percentile(values, 50) for key, values in timing.items()}
        for count in (1, 10):
            total = p50[("decode", count)] + p50[("forward", count)]
            print(
                f"{count:2d} records, reference: decode {p50[('decode', count)] * 1000:6.1f} ms "
                f"(no Image.draft: {p50[('nodraft', count)] * 1000:.1f} ms) + raw eager forward "
                f"{p50[('forward', count)] * 1000:6.1f} ms = {total * 1000:6.1f} ms"
            )
            for mode in modes:
                times = timing[(mode, count)]
                local = p50[(f"local-{mode}", count)]
                note = " (no AMX: runs as jit)" if base.fallback[mode] else ""
                print(
                    f"   {mode:5s}{note}: in-process {local * 1000:7.1f} ms; HTTP p50 "
                    f"{p50[(mode, count)] * 1000:7.1f} ms  p99 {percentile(times, 99) * 1000:7.1f} ms;"
                    f" ratio {p50[(mode, count)] / local:.2f}"
                )
        print()
        for mode in modes:
            same, diff = agreement[mode]
            print(f"predictions {mode:5s} vs eager baseline: same top-1 {same}, max |prob diff| {diff:.5f}")
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
                rate = throughput(servers[mode][0], ids["token"], bodies[10], 10, args.clients, slice_s)
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
