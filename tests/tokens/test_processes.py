"""Revoking a scoped token reaches every process at once: gunicorn with several worker processes
on PostgreSQL, the user-token lookup cached in Redis as in production. Every worker has served
the token before it is revoked; the very next calls, each on a new connection (any worker), are
401, while the owner's own token, whose lookup every worker cached in Redis, keeps working.

Needs PostgreSQL (DATABASE_URL) and Redis (VF_CACHE_URL); skips on a laptop without them, fails
in CI."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service, service_reachable
from tests.servers import free_port, wait_for_port
from tests.test_contract import contract_database  # noqa: F401 - the fixture is used by name

pytestmark = [pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3
CALLS = 4 * WORKERS  # on new connections: each worker's share is served, whichever takes them


@pytest.fixture
def gunicorn(contract_database, tmp_path):  # noqa: F811
    cache_url = os.environ.get("VF_CACHE_URL", "")
    if not cache_url.startswith("redis://"):
        pytest.skip("needs VF_CACHE_URL=redis://...")
    require_service(service_reachable("127.0.0.1", 6379), "Redis")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": contract_database,
        "VF_VAR_DIR": str(tmp_path / "var"),
        "CELERY_BROKER_URL": "filesystem://",
        "VF_THROTTLE_USER": "1000000/min",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    manage("migrate", "--noinput", "-v", "0")
    token = manage("create_user", "owner", "--email", "owner@example.com").strip().splitlines()[-1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "config.wsgi", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", str(WORKERS), "--no-control-socket"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=60)
        yield port, token
    finally:
        server.terminate()
        server.wait(timeout=30)


def _call(port: int, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # a new connection each call
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else {}


def test_a_revoked_scoped_token_is_refused_by_every_worker_process_at_once(gunicorn):
    port, owner_token = gunicorn
    status, me = _call(port, "GET", "/account/v2/user/", owner_token)
    assert status == 200
    tokens = f"/account/v2/workspace/{me['default_workspace']}/tokens/"
    status, created = _call(port, "POST", tokens, owner_token, {"name": "camera", "scope": "read-only"})
    assert status == 201, created
    key = created["key"]
    served = [_call(port, "GET", "/recognition/v2/task/", key)[0] for _ in range(CALLS)]
    assert served == [200] * CALLS

    status, _ = _call(port, "DELETE", f"{tokens}{created['id']}/", owner_token)
    assert status == 204
    refused = [_call(port, "GET", "/recognition/v2/task/", key) for _ in range(CALLS)]
    assert refused == [(401, {"detail": "Invalid token."})] * CALLS
    # The owner's own token, cached in Redis by every worker, still works.
    assert [_call(port, "GET", "/recognition/v2/task/", owner_token)[0] for _ in range(CALLS)] == [
        200
    ] * CALLS
