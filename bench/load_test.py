"""Load test: classify from many clients while others list and upload, against gunicorn on loopback.

    VF_INFERENCE_THREADS=1 .venv/bin/python bench/load_test.py [--seconds 60] [--classify-clients 16]
        [--list-clients 2] [--upload-clients 2] [--workers 2] [--threads 4]

Prepares its own world like bench/bench_classify.py (whose helpers it reuses): a temporary
VF_VAR_DIR with a migrated SQLite database (with DATABASE_URL=postgres://..., a throw-away
PostgreSQL database ``test_<name>`` instead, dropped at the end), a user with a token, a
multi_class task with a TRAINED version (one short ``ml.recognition.recipe.fit`` epoch: the weights do not
matter for load, the shapes do). Then it starts gunicorn (``--workers`` x gthread ``--threads``)
on a free loopback port and, for ``--seconds`` (at most 600):

- ``--classify-clients`` threads each POST ``classify/`` with 10 base64 records (512 px JPEGs),
  one call after another;
- ``--list-clients`` threads GET the training-image, task and label lists in turn;
- ``--upload-clients`` threads POST ``training-image/`` with a fresh small JPEG (base64) each time.

Prints, per endpoint: calls, errors (anything but the expected status), p50/p99 latency and
throughput. Exits 1 if any call failed. Plain threads and http.client: nothing to install.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_classify import body_for, free_port, percentile, photo, prepare  # noqa: E402
from bench.postgres import throwaway_database  # noqa: E402

MAX_SECONDS = 600
THREADS = int(os.environ.get("VF_INFERENCE_THREADS", "1"))


def start_gunicorn(port: int, env: dict, workers: int, threads: int) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [str(gunicorn), "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers), "-k", "gthread",
         "--threads", str(threads), "--timeout", "120", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health/")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise RuntimeError("gunicorn did not start")


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)

    def call(self, port, name, method, path, token, body=None, expect=200) -> dict | None:
        headers = {"Authorization": f"Token {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            connection.close()
            error = None if response.status == expect else f"HTTP {response.status}: {payload[:200]!r}"
        except OSError as exc:
            payload, error = b"", f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies[name].append(elapsed)
            if error:
                self.errors[name].append(error)
        return None if error else json.loads(payload)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60, help=f"duration (at most {MAX_SECONDS})")
    parser.add_argument("--classify-clients", type=int, default=16)
    parser.add_argument("--list-clients", type=int, default=2)
    parser.add_argument("--upload-clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="gthreads per worker")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="vf-load-"))
    os.environ.update(
        {
            "VF_VAR_DIR": str(var_dir),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "VF_INFERENCE_THREADS": str(THREADS),
            "WEB_CONCURRENCY": str(args.workers),
            "VF_THROTTLE_USER": "1000000/min",
            "VF_LOG_LEVEL": "WARNING",
        }
    )
    database_url = os.environ.get("DATABASE_URL", "")
    postgres = database_url.startswith(("postgres://", "postgresql://"))
    with throwaway_database() if postgres else contextlib.nullcontext() as database:
        if database:  # the server works on the throw-away database too
            os.environ["DATABASE_URL"] = urlunsplit(urlsplit(database_url)._replace(path=f"/{database}"))
        run(args, var_dir, dict(os.environ))


def run(args, var_dir: Path, env: dict) -> None:
    seconds = min(args.seconds, MAX_SECONDS)
    rng = np.random.default_rng(0)
    images = [photo(rng) for _ in range(10)]
    ids = prepare(var_dir, "lite0", images, [f"class {n}" for n in range(5)])
    token, task_id = ids["token"], ids["task_id"]
    classify_body = body_for(task_id, images)

    port = free_port()
    server = start_gunicorn(port, env, args.workers, args.threads)
    recorder = Recorder()
    try:
        for _ in range(args.workers * 2):  # load and warm the version in every worker
            recorder.call(port, "warm-up", "POST", "/recognition/v2/classify/", token, classify_body)
        recorder.latencies.clear()
        recorder.errors.clear()

        deadline = time.monotonic() + seconds

        def classify_client():
            while time.monotonic() < deadline:
                recorder.call(port, "classify (10 records)", "POST", "/recognition/v2/classify/", token,
                              classify_body)  # fmt: skip

        def list_client():
            paths = ["/recognition/v2/training-image/?page_size=25", "/recognition/v2/task/",
                     "/recognition/v2/label/"]  # fmt: skip
            n = 0
            while time.monotonic() < deadline:
                path = paths[n % len(paths)]
                recorder.call(port, f"GET {path.split('?')[0].split('/')[-2]}/", "GET", path, token)
                n += 1

        def upload_client(seed: int):
            local = np.random.default_rng(1000 + seed)
            while time.monotonic() < deadline:
                data = photo(local, size=160)  # fresh bytes: never a duplicate
                body = json.dumps({"base64": base64.b64encode(data).decode()}).encode()
                recorder.call(port, "POST training-image/", "POST", "/recognition/v2/training-image/", token,
                              body, expect=201)  # fmt: skip

        threads = [threading.Thread(target=classify_client) for _ in range(args.classify_clients)]
        threads += [threading.Thread(target=list_client) for _ in range(args.list_clients)]
        threads += [threading.Thread(target=upload_client, args=(n,)) for n in range(args.upload_clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(
        f"\n{seconds:g} s against gunicorn {args.workers} workers x {args.threads} gthreads, "
        f"{THREADS} torch thread(s) per worker, {os.cpu_count()} cores, load average {os.getloadavg()}, "
        f"database {'PostgreSQL' if os.environ.get('DATABASE_URL') else 'SQLite'}"
    )
    print(
        f"clients: {args.classify_clients} classify (10 records each), {args.list_clients} list, "
        f"{args.upload_clients} upload\n"
    )
    print(f"{'endpoint':26s} {'calls':>6s} {'errors':>6s} {'p50 ms':>8s} {'p99 ms':>8s} {'calls/s':>8s}")
    total_errors = 0
    for name, values in sorted(recorder.latencies.items()):
        errors = len(recorder.errors[name])
        total_errors += errors
        print(
            f"{name:26s} {len(values):6d} {errors:6d} {percentile(values, 50) * 1000:8.1f} "
            f"{percentile(values, 99) * 1000:8.1f} {len(values) / elapsed:8.2f}"
        )
    classified = len(recorder.latencies["classify (10 records)"]) * 10
    print(f"\nclassify throughput: {classified / elapsed:.1f} records/s; errors in total: {total_errors}")
    for name, errors in recorder.errors.items():
        for error in errors[:3]:
            print(f"  {name}: {error}")
    sys.exit(1 if total_errors else 0)


if __name__ == "__main__":
    main()
