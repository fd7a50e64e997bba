"""What the fault tests share: real processes (gunicorn, Celery workers from
tests/training/test_worker.py, whole ``scripts/run.sh`` stacks), a Redis database of their own, a
TCP proxy in front of PostgreSQL, and an HTTP client that records every answer.

The worker and web processes use the pytest-django test database (``transactional_db``), so rows
the test writes are theirs and the other way round; only PostgreSQL allows that, so the tests that
start them need the CI pass's DATABASE_URL (they skip without it on a laptop, fail with CI=true).
A ``run.sh`` stack (``stack_env``) runs on the embedded defaults, or on a PostgreSQL database of
its own in the CI pass.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection

from tests.conftest import require_service, service_reachable
from tests.factories import FAST_TRAINING
from tests.faults.proxy import TcpProxy
from tests.servers import free_port, wait_for_port
from tests.training.test_worker import Worker

# The fault tests' own Redis database: they flush it and cut its clients (a Redis restart) without
# disturbing the other tests' databases (tests/training/test_worker.py uses 13, several machines 12).
FAULTS_REDIS_DB = 14


def postgres_test_database() -> dict:
    """The test database's settings; skip (fail in CI) unless it is a reachable PostgreSQL."""
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pytest.skip("needs DATABASE_URL=postgres://... (the CI pass sets it)")
    db = connection.settings_dict
    require_service(
        connection.vendor == "postgresql"
        and service_reachable(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)),
        "PostgreSQL",
    )
    return db


def database_url(port: int | None = None) -> str:
    """The test database's URL, through ``port`` on loopback (a proxy) when given."""
    db = connection.settings_dict  # during tests NAME is the test database (test_<name>)
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = "127.0.0.1" if port else (db["HOST"] or "127.0.0.1")
    return f"postgres://{auth}@{host}:{port or db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def postgres_proxy():
    """A TCP proxy in front of the test database's PostgreSQL (tests/faults/proxy.py)."""
    db = postgres_test_database()
    proxy = TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    yield proxy
    proxy.close()


@pytest.fixture
def faults_redis(transactional_db, settings, tmp_path, monkeypatch):
    """The fault tests' Redis database, empty; the test process publishes jobs there (not eager),
    with the tiny trainings of FAST_TRAINING. Yields its URL."""
    import redis

    from config.celery import app

    postgres_test_database()
    broker_url = os.environ.get("CELERY_BROKER_URL", "")
    if not broker_url.startswith("redis://"):
        pytest.skip("needs CELERY_BROKER_URL=redis://... (the CI pass sets it)")
    parts = urlsplit(broker_url)
    require_service(service_reachable(parts.hostname or "127.0.0.1", parts.port or 6379), "Redis")
    url = urlunsplit(parts._replace(path=f"/{FAULTS_REDIS_DB}"))
    redis.Redis.from_url(url).flushdb()
    for key, value in FAST_TRAINING.items():
        setattr(settings, key, value)
    settings.VF_MODEL_CACHE_DIR = tmp_path / "model-cache"
    monkeypatch.setenv("CELERY_BROKER_URL", url)  # Celery reads it before its own configuration
    app.conf.task_always_eager = False
    app._after_fork()  # drop pooled connections to the previous broker
    yield url
    app.conf.task_always_eager = True
    monkeypatch.undo()
    app._after_fork()


@pytest.fixture
def start_worker(faults_redis, tmp_path):
    """Start Celery workers (tests/training/test_worker.py's Worker) on the fault tests' Redis
    database; each is stopped at the end."""
    started: list[Worker] = []

    def start(args: tuple[str, ...] = (), **env) -> Worker:
        worker = Worker(faults_redis, tmp_path / f"worker-{len(started)}.log", args=args, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


class WebServer:
    """gunicorn with scripts/run.sh's options (2 workers x 4 threads) in its own process group, on
    the test database (or ``DATABASE_URL`` given), the test's media folder, no shared cache and
    the filesystem broker (or ``CELERY_BROKER_URL`` given)."""

    def __init__(self, log: Path, **env):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        environment = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "VF_VAR_DIR": str(log.parent / "web-var"),
            "VF_MEDIA_ROOT": str(django_settings.MEDIA_ROOT),
            "VF_CACHE_URL": "",
            "CELERY_BROKER_URL": "filesystem://",
            "VF_THROTTLE_USER": "100000/min",
            "VF_MIN_IMAGES_PER_LABEL": str(FAST_TRAINING["VF_MIN_IMAGES_PER_LABEL"]),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        environment.pop("DJANGO_SETTINGS_MODULE", None)
        self.output = open(log, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "config.wsgi:application",
             "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "--threads", "4", "--timeout", "120",
             "--no-control-socket"],
            cwd=django_settings.BASE_DIR, env=environment, stdout=self.output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_port(self.port, timeout=120)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"gunicorn did not start:\n{self.text()[-3000:]}") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.output.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_web(tmp_path):
    started: list[WebServer] = []

    def start(**env) -> WebServer:
        server = WebServer(tmp_path / f"web-{len(started)}.log", **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def stack_env():
    """The stack's environment; on PostgreSQL (DATABASE_URL set) a fresh database, dropped after."""
    env = {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4", "VF_THROTTLE_USER": "100000/min"}
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        yield env
        return
    import psycopg

    db = urlsplit(database_url)
    require_service(service_reachable(db.hostname or "127.0.0.1", db.port or 5432), "PostgreSQL")
    name = f"vf_faults_{uuid.uuid4().hex[:10]}"
    admin = urlunsplit(db._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield {**env, "DATABASE_URL": urlunsplit(db._replace(path=f"/{name}"))}
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def group_processes(pgid: int) -> dict[int, str]:
    """The live processes of process group ``pgid``: pid -> command line (a zombie is dead, only
    not yet reaped by whoever adopted it)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            state, _ppid, group = stat[stat.rfind(")") + 2 :].split()[:3]
            if int(group) != pgid or state == "Z":
                continue
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def processes_of(var_dir: Path) -> dict[int, str]:
    """The live processes whose environment names ``var_dir`` as VF_VAR_DIR: everything a stack
    started, whichever process group it ended up in."""
    marker = f"VF_VAR_DIR={var_dir}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat[stat.rfind(")") + 2] == "Z" or marker not in (entry / "environ").read_bytes().split(
                b"\0"
            ):
                continue
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def check_storage(var_dir: Path, env: dict, *args: str) -> dict:
    """``manage.py check_storage --json --min-age 0`` on the stack's folder and database."""
    environment = {**os.environ, "VF_VAR_DIR": str(var_dir), **env}
    result = subprocess.run(
        [sys.executable, "manage.py", "check_storage", "--json", "--min-age", "0", *args],
        cwd=django_settings.BASE_DIR, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def call(base: str, token: str, method: str, path: str, body: dict | None = None, timeout: float = 60):
    """One HTTP request; ``(status, JSON body or raw bytes, headers)``, status 0 when the connection
    failed (the server was killed under it)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            raw, status, headers = response.read(), response.status, response.headers
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, exc.headers
    except (OSError, http.client.HTTPException) as exc:  # cut off: refused, reset, half an answer
        return 0, repr(exc), {}
    if headers.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(raw or b"null"), headers
    return status, raw[:300], headers


def wait_until(predicate, what: str, timeout: float = 180, log=None):
    """Poll ``predicate`` until it returns something true, and return that; fail with ``log()``'s
    text after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}" + (f":\n{log()[-4000:]}" if log else ""))
