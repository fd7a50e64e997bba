"""Request-path benchmark: server time of tiny answers, ``GET /health`` and ``GET task/`` (with
the user's token, and with a scoped token of the same workspace, apps/tokens).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    VF_CACHE_URL=redis://127.0.0.1:6379/1 .venv/bin/python bench/bench_request_path.py [--repeats 300]

Creates its own database (``test_<name>`` of DATABASE_URL, migrated, dropped at the end), one user
with a token, an empty default workspace and a full-scope token of it, and clears the cache. The
user's token lookup is cached (Redis); a scoped token's never is (a revocation must be seen at
once), so its row shows what that costs. Then, for each call:

- in-process: DRF's test client through the whole Django stack (middleware, token, workspace,
  throttle, serialisation), no socket: p50 / p90 over ``--repeats`` calls after 20 warm-ups;
- gunicorn: one worker (``gthread``, 2 threads) on a free loopback port, the same calls over one
  kept-alive HTTP connection; server time is gunicorn's own per-request time (``%(D)s`` of its
  access log: from reading the request to the last byte written), the client's round trip is
  printed beside it.

The throttle rates are raised to 100000/min for the run (the calls come faster than the default
6000/min allows) and DEBUG is off. Not part of the test suite; takes about a minute.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ["VF_THROTTLE_USER"] = os.environ["VF_THROTTLE_ANON"] = "100000/min"

# (name, path, which token: None, "user" or "scoped")
CALLS = [
    ("GET /health", "/health", None),
    ("GET recognition/v2/task/", "/recognition/v2/task/", "user"),
    ("GET task/, scoped token", "/recognition/v2/task/", "scoped"),
]
WARM_UPS = 20


def summary(times: list[float]) -> str:
    times = sorted(times)
    return f"p50 {statistics.median(times):6.2f} ms  p90 {times[int(len(times) * 0.9) - 1]:6.2f} ms"


def in_process(tokens: dict, repeats: int) -> None:
    from rest_framework.test import APIClient

    for name, path, kind in CALLS:
        client = APIClient()
        if kind:
            client.credentials(HTTP_AUTHORIZATION=f"Token {tokens[kind]}")
        for _ in range(WARM_UPS):
            assert client.get(path).status_code == 200
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content
        print(f"  in-process  {name:<28} {summary(times)}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def under_gunicorn(tokens: dict, database: str, repeats: int) -> None:
    url = urlsplit(os.environ["DATABASE_URL"])
    env = {**os.environ, "DATABASE_URL": urlunsplit(url._replace(path="/" + database))}
    port = free_port()
    log = Path(tempfile.mkdtemp()) / "access.log"
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}"]
    command += ["-k", "gthread", "-w", "1", "--threads", "2", "--keep-alive", "30", "--log-level", "warning"]
    command += ["--access-logfile", str(log), "--access-logformat", "%(U)s %(D)s"]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for name, path, kind in CALLS:
            headers = {"Authorization": f"Token {tokens[kind]}"} if kind else {}
            conn = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=60
            )  # the first call imports the views
            times = []
            for attempt in range(WARM_UPS + repeats):
                started = time.perf_counter()
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                assert response.status == 200, (path, response.status)
                if attempt >= WARM_UPS:
                    times.append((time.perf_counter() - started) * 1000)
            conn.close()
            print(f"  gunicorn    {name:<28} client round trip {summary(times)}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # One connection, one call at a time: the log's lines come in the calls' order.
    lines = [line.split() for line in log.read_text().splitlines()]
    for number, (name, path, _) in enumerate(CALLS):
        block = lines[number * (WARM_UPS + repeats) : (number + 1) * (WARM_UPS + repeats)]
        assert all(url == path for url, _micros in block), name
        served = [int(micros) / 1000 for _url, micros in block][WARM_UPS:]
        print(f"  gunicorn    {name:<28} server time       {summary(served)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()

    from bench.postgres import throwaway_database

    with throwaway_database() as database:
        from django.core.cache import cache
        from django.db import connection

        from apps.tokens.services import scoped_token_create
        from apps.workspaces import services

        cache.clear()
        user, token = services.user_create(username="bench")
        workspace = services.workspace_ensure_default(user=user)
        _scoped, key = scoped_token_create(workspace=workspace, actor=user, name="bench", scope="full")
        tokens = {"user": token, "scoped": key}
        in_process(tokens, args.repeats)
        connection.close()
        under_gunicorn(tokens, database, args.repeats)


if __name__ == "__main__":
    main()
