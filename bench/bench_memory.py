"""Memory of a web process holding ``VF_MODEL_CACHE_SIZE`` lite0-sized versions (issue #23).

    .venv/bin/python bench/bench_memory.py [--versions 7] [--before COMMIT] [--calls 3] [--speed 20]

Prepares everything itself (a temporary VF_VAR_DIR, a migrated SQLite database, a user and token):
trains one tf_efficientnet_lite0 version at 224 px for one short epoch (``bench_classify``'s
version: the weights do not matter for memory, the shapes do), writes its FP32 ONNX export (what
older versions serve; the larger of the two precisions) and registers a copy of it as the TRAINED
version of each of ``--versions`` tasks. Then it starts gunicorn as ``scripts/run.sh`` does
(``config.wsgi``, gthread, 4 threads; one worker, so every call lands in the one process measured)
and reads that worker's resident memory (VmRSS, /proc) at each step:

- at rest: after one authenticated request that loads no model (a task list);
- after classifying (``--calls`` calls of 10 records of 512 px JPEGs) through each task in turn:
  from the fifth on, every new version evicts the least recently used one (cache of 4);
- the peak (VmHWM) over the whole run.

With ``--before COMMIT`` the same is measured, in the same run and on the same database and
artifacts, for the code of ``COMMIT`` (``git archive`` into a temporary folder, run with this
virtualenv), so the figures are before/after ratios on one machine state. ``--speed N``: then
both servers run at once and take N classify calls each in turns (latency p50 and its ratio).
Absolute memory figures move a little with the libraries' versions; the machine's load does not
change them much (unlike time).
Not part of the test suite; takes a few minutes (the training dominates).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_classify import body_for, call, free_port, photo, train_version  # noqa: E402


def prepare(var_dir: Path, versions: int, images: list[bytes]) -> dict:
    """Migrate, create a user and token, ``versions`` tasks each with a TRAINED lite0 version."""
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
    labels = [Label.objects.create(workspace=workspace, name=f"class {n}") for n in range(5)]
    started = time.perf_counter()
    folder = var_dir / "trained"
    train_version(folder, "lite0", images, [{"id": str(x.id), "name": x.name} for x in labels])
    export_onnx(folder)  # FP32, as a version trained before model.onnx existed gets on first load
    print(f"trained and exported a lite0 version in {time.perf_counter() - started:.0f} s", flush=True)
    task_ids = []
    for number in range(versions):
        task = Task.objects.create(
            workspace=workspace, owner=user, name=f"bench {number}", type="multi_class"
        )
        task.labels.add(*labels)
        version = ModelVersion.objects.create(
            workspace=workspace, task=task, version=1, train_status=ModelVersion.Status.TRAINED
        )
        version.artifact_path = artifacts.save_artifacts(version, folder)
        version.save(update_fields=["artifact_path"])
        Task.objects.filter(pk=task.pk).update(production_version=1, last_train_status="TRAINED")
        task_ids.append(str(task.pk))
    onnx_mb = (folder / "model.onnx").stat().st_size / 2**20
    return {"token": str(token), "task_ids": task_ids, "onnx_mb": onnx_mb}


def status_mb(pid: int) -> dict[str, float]:
    found = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            field, _, rest = line.partition(":")
            if field in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                found[field] = int(rest.split()[0]) / 1024
    return found


def worker_pid(master: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.2)
    raise RuntimeError("no gunicorn worker")


def start_server(code: Path, port: int, env: dict) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [str(gunicorn), "config.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "1", "-k", "gthread",
         "--threads", "4", "--timeout", "300", "--log-level", "warning", "--no-control-socket"],
        cwd=code, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    import socket

    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("gunicorn did not start")


def rest_request(port: int, token: str) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("GET", "/recognition/v2/task/", headers={"Authorization": f"Token {token}"})
    response = connection.getresponse()
    response.read()
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"task list: HTTP {response.status}")


def measure(name: str, code: Path, env: dict, ids: dict, images: list[bytes], calls: int) -> dict:
    port = free_port()
    server = start_server(code, port, env)
    try:
        pid = worker_pid(server.pid)
        rest_request(port, ids["token"])
        time.sleep(0.5)
        steps = [("at rest", status_mb(pid))]
        for number, task_id in enumerate(ids["task_ids"], start=1):
            body = body_for(task_id, images)
            for _ in range(calls):
                call(port, ids["token"], body)
            time.sleep(0.3)
            steps.append((f"after version {number}", status_mb(pid)))
        rest_request(port, ids["token"])
        time.sleep(0.5)
        final = status_mb(pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"\n{name}: worker RSS (MB)", flush=True)
    for label, figures in steps:
        rss, anon, file = figures["VmRSS"], figures["RssAnon"], figures["RssFile"]
        print(f"  {label:18s} RSS {rss:7.0f}  anon {anon:7.0f}  file {file:6.0f}")
    print(f"  {'peak (VmHWM)':18s} {final['VmHWM']:7.0f}", flush=True)
    return {"steps": steps, "peak": final["VmHWM"], "final": final["VmRSS"]}


def speed(codes: dict[str, Path], env: dict, ids: dict, images: list[bytes], rounds: int) -> None:
    """Classify latency (10 records, one cached version) of every code's server, in turns, so the
    machine's load weighs on each alike; p50 and its ratio to the first code's."""
    servers = {}
    try:
        for name, code in codes.items():
            port = free_port()
            servers[name] = (port, start_server(code, port, env))
        body = body_for(ids["task_ids"][0], images)
        for port, _ in servers.values():
            for _ in range(2):  # load and warm up
                call(port, ids["token"], body)
        times: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(rounds):
            for name, (port, _) in servers.items():
                times[name].append(call(port, ids["token"], body)[0])
    finally:
        for _, server in servers.values():
            server.terminate()
            server.wait(timeout=60)
    first = float(np.median(next(iter(times.values()))))
    print(f"\nclassify 10 records over HTTP, p50 of {rounds} calls in turns:")
    for name, values in times.items():
        print(f"  {name:24s} {np.median(values) * 1000:6.0f} ms  {np.median(values) / first:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--versions", type=int, default=7, help="tasks classified in turn, one version each")
    parser.add_argument("--calls", type=int, default=3, help="classify calls (10 records) per version")
    parser.add_argument("--before", default="", help="a commit whose code to measure alongside")
    parser.add_argument("--speed", type=int, default=0, help="rounds of a latency check of each code")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="vf-bench-memory-"))
    env = {
        **os.environ,
        "VF_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "VF_THROTTLE_USER": "1000000/min",
        "VF_LOG_LEVEL": "WARNING",
        "VF_MODEL_CACHE_SIZE": os.environ.get("VF_MODEL_CACHE_SIZE", "4"),
    }
    os.environ.update(env)
    rng = np.random.default_rng(0)
    images = [photo(rng) for _ in range(10)]
    codes = {"current": ROOT}
    try:
        ids = prepare(var_dir, args.versions, images)
        print(f"model.onnx (FP32): {ids['onnx_mb']:.1f} MB; cache size {env['VF_MODEL_CACHE_SIZE']}")
        if args.before:
            before = var_dir / "before-code"
            before.mkdir()
            archive = subprocess.run(
                ["git", "archive", args.before], cwd=ROOT, capture_output=True, check=True
            )
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
            codes = {f"before ({args.before})": before, **codes}
        results = {name: measure(name, code, env, ids, images, args.calls) for name, code in codes.items()}
        if len(results) == 2:
            (old, new) = results.values()
            print("\nratio current / before:")
            for (label, a), (_, b) in zip(old["steps"], new["steps"], strict=True):
                print(f"  {label:18s} {b['VmRSS'] / a['VmRSS']:.2f}")
            print(f"  {'peak':18s} {new['peak'] / old['peak']:.2f}")
        print(json.dumps({name: {"peak": r["peak"], "final": r["final"]} for name, r in results.items()}))
        if args.speed:
            speed(codes, env, ids, images, args.speed)
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
