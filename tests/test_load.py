"""Nothing lost under concurrency: 16 clients against the real stack of ``scripts/run.sh``.

Starts the README's run command (gunicorn, 2 workers x 4 threads, and the Celery worker) on a
fresh ``VF_VAR_DIR`` (SQLite and the filesystem broker by default; PostgreSQL and Redis in the CI
pass, where DATABASE_URL and CELERY_BROKER_URL are set), then 16 client threads upload images,
attach labels, list, train and classify for a bounded time. No answer may be a 5xx, and every
upload whose label answered 2xx must carry that label at the end.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from tests.test_setup import run_stack

CLIENTS = 16
SECONDS = 20.0  # the load runs this long, then every client finishes its current step


API = "/recognition/v2/"


def _call(base: str, token: str, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, raw[:200]


def _png(rng: np.random.Generator) -> str:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def stack(tmp_path):
    fast = {
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        # Trainings that take a few seconds: the point is the writes they make, not the model.
        "VF_TRAIN_ARCHITECTURE": "resnet10t",
        "VF_PRETRAINED": "none",
        "VF_TRAIN_EPOCHS": "1",
        "VF_TRAIN_THREADS": "1",
        "VF_MIN_IMAGES_PER_LABEL": "5",
        "VF_THROTTLE_USER": "100000/min",
    }
    with run_stack(tmp_path, **fast) as (base, log):
        log.seek(0)
        match = re.search(r"API token:\s+([0-9a-f]{40})", log.read())
        assert match, "run.sh printed no token"
        yield base, match.group(1), log


def test_sixteen_clients_get_no_server_error_and_lose_no_label(stack):
    base, token, log = stack
    status, task = _call(base, token, "POST", API + "task/", {"name": "load", "type": "multi_class"})
    assert status == 201, task
    labels = []
    for name in ("a", "b"):
        status, label = _call(base, token, "POST", API + "label/", {"name": name, "type": "category"})
        assert status == 201, label
        path = f"{API}task/{task['id']}/add-label/"
        status, body = _call(base, token, "POST", path, {"label_id": label["id"]})
        assert status == 200, body
        labels.append(label["id"])

    statuses: Counter = Counter()
    failures: list[str] = []
    labelled: list[tuple[str, str]] = []  # (image id, label id) whose add-label answered 2xx
    lock = threading.Lock()
    stop_at = time.monotonic() + SECONDS

    def record(what: str, status: int, body) -> None:
        with lock:
            statuses[(what, status)] += 1
            if status >= 500:
                failures.append(f"{what}: {status} {body}")

    def client(n: int) -> None:
        rng = np.random.default_rng()  # fresh bytes every run: uploads are deduplicated per workspace
        step = 0
        while time.monotonic() < stop_at:
            step += 1
            label = labels[step % 2]
            status, image = _call(base, token, "POST", API + "training-image/", {"base64": _png(rng)})
            record("upload", status, image)
            if status == 201:
                path = f"{API}training-image/{image['id']}/add-label/"
                status, body = _call(base, token, "POST", path, {"label_id": label})
                record("add-label", status, body)
                if status < 300:
                    with lock:
                        labelled.append((image["id"], label))
            if step % 3 == 0:
                status, body = _call(base, token, "GET", "/recognition/v2/training-image/?page_size=10")
                record("list", status, body)
            if step % 5 == 0:
                status, body = _call(base, token, "POST", f"/recognition/v2/task/{task['id']}/train/", {})
                record("train", status, body)
            if step % 4 == 0:
                status, body = _call(
                    base, token, "POST", "/recognition/v2/classify/",
                    {"task_id": task["id"], "records": [{"_base64": _png(rng)}]},
                )  # fmt: skip
                record("classify", status, body)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 120)
    log.seek(0)
    output = log.read()
    # The server's own account of a 5xx: its tracebacks, else the end of the log.
    tracebacks = [part[:3000] for part in output.split("Traceback")[1:4]]
    assert not failures, "\n".join(failures[:20]) + "\n" + ("\n".join(tracebacks) or output[-5000:])
    assert statuses[("upload", 201)] >= CLIENTS, statuses  # the load really ran
    assert statuses[("train", 200)] >= 1, statuses

    # Every image whose label answered 2xx carries it (read back through the API).
    missing = []
    for image_id, label_id in random.Random(0).sample(labelled, min(len(labelled), 300)):
        status, image = _call(base, token, "GET", f"/recognition/v2/training-image/{image_id}")
        if status != 200 or label_id not in {row["id"] for row in image["labels"]}:
            missing.append((image_id, label_id, status))
    assert not missing, missing[:10]
    log.seek(0)
    assert "database is locked" not in log.read()
