"""The README's run command works from a fresh state: it starts, /health answers, the token works.

Runs ``scripts/run.sh`` for real (migrate, demo user, Celery worker, gunicorn) against a fresh
``VF_VAR_DIR``. It reuses the test run's virtual environment (``VF_VENV``), so the install step is
the lock-file check only. With DATABASE_URL / CELERY_BROKER_URL set (the CI pass) the same command
runs on PostgreSQL and Redis.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, token: str | None = None):
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _default_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@contextlib.contextmanager
def run_stack(tmp_path, with_process: bool = False, **extra_env):
    """``scripts/run.sh`` on a fresh VF_VAR_DIR, up once /health answers; yields (base URL, log),
    and its process (the leader of its process group) too ``with_process``.

    ``extra_env`` overrides the environment (workers, threads, training settings)."""
    port = _free_port()
    env = {
        **os.environ,
        "VF_VENV": sys.prefix,
        "VF_VAR_DIR": str(tmp_path / "var"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        **extra_env,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    # Append mode: the children share this file offset, and the tests seek it to read the log;
    # O_APPEND keeps every write at the end whatever the offset.
    log = open(tmp_path / "run.log", "a+")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "run.sh")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # one process group: the worker and gunicorn stop with it
        # As a terminal starts it: Ctrl-C's SIGINT at its default. A test run started in the
        # background of a non-interactive shell (`.ci/run &`) ignores SIGINT, its children inherit
        # that, and bash can never trap a signal ignored when it started: run.sh's Ctrl-C trap
        # would not run (exit 0 instead of 130, seen in a check run that way).
        preexec_fn=_default_interrupts,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                if _get(base + "/health")[0] in (200, 503):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        log.seek(0)
        assert process.poll() is None, f"run.sh exited early:\n{log.read()}"
        yield (base, log, process) if with_process else (base, log)
    finally:
        _stop(process)
        log.close()


@pytest.fixture
def running_service(tmp_path):
    with run_stack(tmp_path) as (base, log):
        log.seek(0)
        yield base, log.read()


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_the_run_command_starts_the_service_and_prints_a_working_token(running_service):
    base, output = running_service
    status, health = _get(base + "/health")
    assert status == 200, health
    assert {k: health[k] for k in ("status", "database", "broker")} == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
    }
    engine = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postg") else "sqlite"
    transport = "redis" if os.environ.get("CELERY_BROKER_URL", "").startswith("redis") else "filesystem"
    assert (health["database_engine"], health["broker_transport"]) == (engine, transport)

    match = re.search(r"API token:\s+([0-9a-f]{40})", output)
    assert match, output
    status, workspaces = _get(base + "/account/v2/workspace/", token=match.group(1))
    assert status == 200
    assert [w["name"] for w in workspaces] == ["Default"]
    assert workspaces[0]["is_default"] is True
    for url in ("/api/docs/", "/api/schema/", "/admin/", "/health", "/console/"):
        assert base + url in output

    assert _get(base + "/account/v2/workspace/")[0] == 401
    # The console's sign-in page and its static files, as gunicorn serves them (collectstatic).
    with urllib.request.urlopen(base + "/console/login/", timeout=5) as page:  # noqa: S310 - loopback
        assert page.status == 200 and b"Sign in" in page.read()
    with urllib.request.urlopen(base + "/static/console/vendor/htmx.min.js", timeout=5) as script:  # noqa: S310
        assert script.status == 200 and b"htmx 2.0.11" in script.read(200)


def test_the_run_command_refuses_a_public_address_with_the_development_secrets(tmp_path):
    env = {**os.environ, "VF_VAR_DIR": str(tmp_path / "var"), "HOST": "0.0.0.0", "PORT": str(_free_port())}  # noqa: S104 - refused
    for name in ("DJANGO_SECRET_KEY", "VF_DEMO_PASSWORD", "VF_ALLOW_INSECURE_DEMO"):
        env.pop(name, None)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "run.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "Refusing to listen on 0.0.0.0" in result.stderr
    assert not (tmp_path / "var").exists()  # nothing was started or written
