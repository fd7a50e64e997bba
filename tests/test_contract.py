"""The published schema and the live server agree: Schemathesis, every check (``--checks all``),
every phase (examples, coverage, fuzzing and the stateful phase that chains the operations through
the links it infers), against a real gunicorn on PostgreSQL with a user's token.

A failure means a client generated from ``/api/schema/`` would be wrong somewhere: the server
accepted a request the schema forbids, refused one it allows, answered a status or a body the
schema does not declare, or a method it does not serve with anything but 405. The fix goes in the
server or in the schema, whichever keeps the Ximilar client working (shared/API.md).

The checks turned down for an operation are in ``tests/contract/schemathesis.toml``, each with its
reason. The seed is fixed, so a failure reproduces (``st replay`` its test case id against a server
of your own, or rerun with the same seed); the example count keeps the run to a couple of minutes
(raise it locally with ``VF_CONTRACT_EXAMPLES`` to dig deeper).

Needs PostgreSQL (the CI pass sets DATABASE_URL; a laptop without it skips). The test makes a
database of its own on that server and drops it afterwards; jobs go to a filesystem broker of its
own, where no worker takes them (nothing trains), and URL fetching is refused
(tests/contract/wsgi.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import require_service, service_reachable
from tests.servers import free_port, wait_for_port

pytestmark = [pytest.mark.services]

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Path(__file__).with_name("contract") / "schemathesis.toml"
SEED = 7
EXAMPLES = int(os.environ.get("VF_CONTRACT_EXAMPLES", "30"))


@pytest.fixture
def contract_database():
    """A fresh PostgreSQL database on the server DATABASE_URL names; dropped afterwards."""
    import psycopg

    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        pytest.skip("needs DATABASE_URL=postgres://...")
    db = urlsplit(database_url)
    require_service(service_reachable(db.hostname or "127.0.0.1", db.port or 5432), "PostgreSQL")
    name = f"vf_contract_{uuid.uuid4().hex[:10]}"
    admin = urlunsplit(db._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(db._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def live_server_and_token(contract_database, tmp_path):
    """gunicorn serving tests/contract/wsgi.py on a free port; yields (base URL, a user's token)."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": contract_database,
        "VF_VAR_DIR": str(tmp_path / "var"),
        "CELERY_BROKER_URL": "filesystem://",
        "VF_CACHE_URL": "",
        "VF_PUBLIC_URL": f"http://127.0.0.1:{port}",
        # One client making thousands of calls: throttling is tested elsewhere.
        "VF_THROTTLE_USER": "1000000/min",
        "VF_THROTTLE_ANON": "1000000/min",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    python = sys.executable

    def manage(*args: str) -> str:
        done = subprocess.run(
            [python, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    manage("migrate", "--noinput", "-v", "0")
    token = manage("create_user", "contract", "--email", "contract@example.com").strip().splitlines()[-1]
    log = open(tmp_path / "gunicorn.log", "a+")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [
            str(Path(python).with_name("gunicorn")),
            "tests.contract.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--timeout",
            "120",
            "--no-control-socket",
            # gunicorn answers a request line over 4094 bytes with its own HTML 414 before the app
            # sees it; generated queries grow past that, and the contract is the app's.
            "--limit-request-line",
            "0",
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def _failures(output: str) -> str:
    """The run's failures and summary: what to read when the test fails."""
    start = output.find("=== FAILURES ===")
    return output[output.rfind("\n", 0, start) + 1 :] if start != -1 else output[-6000:]


def test_the_live_server_does_what_its_schema_says(live_server_and_token, tmp_path):
    base, token = live_server_and_token
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--no-color",
        "--config-file", str(CONFIG),
        "run", f"{base}/api/schema/",
        "--checks", "all",
        "--header", f"Authorization: Token {token}",
        "--seed", str(SEED),
        "--max-examples", str(EXAMPLES),
        "--workers", "2",
        "--request-timeout", "60",
    ]  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1200, env=env)
    output = done.stdout + done.stderr
    (tmp_path / "schemathesis.txt").write_text(output)
    server_log = (tmp_path / "gunicorn.log").read_text()
    # The first 500's traceback, if any (Django logs refused requests with tracebacks too).
    at = server_log.find("Internal Server Error")
    traceback = f"\n\nThe server's first 500:\n{server_log[at : at + 4000]}" if at != -1 else ""
    assert done.returncode == 0, _failures(output) + traceback
    assert "Tested:" in output, output[-3000:]
