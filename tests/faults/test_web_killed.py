"""``kill -9`` of every gunicorn process while 16 clients upload and label; after a restart every
image that got a 2xx is there with its file, its thumbnail and its labels, and no row lacks its
file.

The stack is ``scripts/run.sh`` (tests/test_setup.py's ``run_stack``): SQLite and the filesystem
broker by default, PostgreSQL and Redis in the CI pass, where the test makes a database of its
own so that the storage check sees only its rows. The restart is gunicorn again on the same
folder and database.

What the kill may leave, honestly: an upload cut between writing its files and committing its row
never got a 2xx, and its files stay behind without a row. ``manage.py check_storage`` reports them
as orphans (with ``--min-age 0``; by default a file must be an hour old, as an upload in flight
writes its file just before its row) and ``--fix`` removes them. A row without its file would be
a lost image; there must be none.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import threading
import time
import urllib.request

import numpy as np
import pytest

from tests.faults.conftest import WebServer, call, check_storage, group_processes
from tests.pictures import png
from tests.test_setup import run_stack

pytestmark = pytest.mark.slow

API = "/recognition/v2/"
CLIENTS = 16
LOAD_S = 4.0  # uploads run this long before the kill


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback only
        return response.read()


def test_every_answered_upload_and_label_survives_kill_9_of_every_web_process(tmp_path, stack_env):
    answered: dict[str, set[str]] = {}  # image id -> labels whose upload or add-label got a 2xx
    lock = threading.Lock()
    stop = threading.Event()

    with run_stack(tmp_path, with_process=True, **stack_env) as (base, log, process):
        log.seek(0)
        token = re.search(r"API token:\s+([0-9a-f]{40})", log.read()).group(1)
        labels = []
        for name in ("first", "second"):
            status, label, _ = call(base, token, "POST", API + "label/", {"name": name, "type": "category"})
            assert status == 201, label
            labels.append(label["id"])

        def client(n: int) -> None:
            rng = np.random.default_rng(n)
            while not stop.is_set():
                pixels = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
                body = {"base64": base64.b64encode(png(pixels)).decode(), "labels": [labels[0]]}
                status, image, _ = call(base, token, "POST", API + "training-image/", body)
                if status == 201:
                    with lock:
                        answered[image["id"]] = {labels[0]}
                    path = f"{API}training-image/{image['id']}/add-label/"
                    status, _, _ = call(base, token, "POST", path, {"label_id": labels[1]})
                    if 200 <= status < 300:
                        with lock:
                            answered[image["id"]].add(labels[1])

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(LOAD_S)
        web = {pid: line for pid, line in group_processes(process.pid).items() if "gunicorn" in line}
        assert len(web) == 3, web  # the master and its two workers
        for pid in web:
            os.kill(pid, signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        # run.sh stops (its worker with it) once its web server is gone.
        assert process.wait(timeout=60) != 0
        assert group_processes(process.pid) == {}

    assert len(answered) >= CLIENTS, len(answered)  # the load really ran
    # The restart: gunicorn again on the same folder and database (no new migrations to run).
    var = tmp_path / "var"
    web = WebServer(
        tmp_path / "web-restarted.log",
        VF_VAR_DIR=str(var),
        VF_MEDIA_ROOT=str(var / "media"),
        DATABASE_URL=stack_env.get("DATABASE_URL", f"sqlite:///{var / 'db.sqlite3'}"),
    )
    try:
        base = web.base
        lost = []
        for image_id, wanted in answered.items():
            status, image, _ = call(base, token, "GET", f"{API}training-image/{image_id}")
            if status != 200 or not wanted <= {label["id"] for label in image["labels"]}:
                lost.append((image_id, status, image))
                continue
            if not (_fetch(image["img_path"]) and _fetch(image["thumb_img_path"])):
                lost.append((image_id, "empty file"))
        assert not lost, lost[:5]
    finally:
        web.stop()

    report = check_storage(tmp_path / "var", stack_env)
    assert report["missing"] == [], report["missing"][:5]  # no row without its file or thumbnail
    if report["orphan_files"]:  # uploads cut mid-flight, never answered: --fix removes them
        check_storage(tmp_path / "var", stack_env, "--fix")
        report = check_storage(tmp_path / "var", stack_env)
    assert report["clean"], report
