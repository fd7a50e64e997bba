"""Deep pages after a burst import (issue 23): the first, middle (``?page=20000``) and last page of
a million images created within seconds, p50 over HTTP, the code before and after the list's
blocks of rows (apps/core/positions.py) in the same run, against the same database.

    .venv/bin/python bench/bench_pages.py [--rows 1000000] [--repeats 15] [--old REF] [--new REF]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<name> .venv/bin/python bench/bench_pages.py

SQLite by default (a file in a temporary VF_VAR_DIR), PostgreSQL when DATABASE_URL names one (the
database is created for the run and dropped at the end). Each git ref is extracted with
``git archive`` into a temporary folder; the new ref migrates the database, a user and its token
come from the services, ``tests/bulk.py`` fills the workspace in one statement (two images a
microsecond: the whole million within half a second, so every per-minute count holds all of it),
then ``ANALYZE`` (and ``VACUUM``, ``CHECKPOINT`` on PostgreSQL: what autovacuum keeps on a live
server). Both refs are served at once by gunicorn (one sync worker each, DEBUG off) on loopback
ports; each URL is asked ``--repeats`` times of each, alternately (old, new, old, ...) after two
warm-ups, so contention on the machine falls on both alike. Prints p50 and p90 in ms, and new/old.

The old ref's lists know nothing of the blocks (they read the per-hour and per-minute counts the
images table still keeps on PostgreSQL, and skip from the nearer end on SQLite). Not part of the
test suite; filling a million rows takes a minute or two.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_classify import free_port  # noqa: E402

BASE = "/recognition/v2/training-image/"


def extract(ref: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def postgres_database(url: str, *, create: bool) -> None:
    """Create (fresh) or drop the database DATABASE_URL names, from the server's ``postgres``."""
    import psycopg

    head, name = url.rsplit("/", 1)
    with psycopg.connect(f"{head}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            admin.execute(f'CREATE DATABASE "{name}"')


def prepare(code: Path, env: dict, rows: int) -> tuple[str, str]:
    """Migrate with ``code``, make a user and fill its workspace; (token, workspace id)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=code, env=env, check=True)
    script = f"""
import time, django
django.setup()
from django.db import connection
from apps.workspaces import services
from tests.bulk import fill_images
user, token = services.user_create(username="bench")
workspace = services.workspace_ensure_default(user=user)
started = time.monotonic()
fill_images(workspace_id=workspace.id, count={rows}, step="1 microsecond")
filled = time.monotonic()
with connection.cursor() as cursor:
    if connection.vendor == "postgresql":
        cursor.execute("VACUUM ANALYZE images_trainingimage")
        cursor.execute("VACUUM ANALYZE core_listblock")
        cursor.execute("CHECKPOINT")
    else:
        cursor.execute("ANALYZE")
print(f"filled {rows:,} in {{filled - started:.0f}} s, analysed in {{time.monotonic() - filled:.0f}} s",
      file=__import__("sys").stderr)
print(token, workspace.id)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=code, env=env, capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    done.check_returncode()
    token, workspace = done.stdout.split()[-2:]
    return token, workspace


def serve(code: Path, env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [str(gunicorn), "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--timeout", "120",
         "--log-level", "warning"],
        cwd=code, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health/")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise RuntimeError("gunicorn did not start")


def get(port: int, token: str, path: str) -> float:
    """One GET over a fresh connection (gunicorn's sync worker closes each): its time in ms."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("GET", path, headers={"Authorization": f"Token {token}"})
    response = connection.getresponse()
    response.read()
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status == 200, (path, response.status)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--old", default="a973efa^", help="the code before the blocks (git ref)")
    parser.add_argument("--new", default="HEAD", help="the code with them (git ref)")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    postgres = url.startswith(("postgres://", "postgresql://"))
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        tmp = Path(tmp)
        env = {
            **os.environ,
            "VF_VAR_DIR": str(tmp / "var"),
            "DATABASE_URL": url if postgres else f"sqlite:///{tmp / 'var' / 'db.sqlite3'}",
            "DJANGO_DEBUG": "false",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONPATH": "",
        }
        (tmp / "var" / "static").mkdir(parents=True)
        if postgres:
            postgres_database(url, create=True)
        servers = []
        try:
            old, new = extract(args.old, tmp / "old"), extract(args.new, tmp / "new")
            token, _ = prepare(new, {**env, "PYTHONPATH": str(new)}, args.rows)
            ports = {}
            for name, code in (("old", old), ("new", new)):
                process, ports[name] = serve(code, {**env, "PYTHONPATH": str(code)})
                servers.append(process)
            last = -(-args.rows // 25)
            print(
                f"{'PostgreSQL' if postgres else 'SQLite'}, {args.rows:,} images created within "
                f"{args.rows // 2 / 1e6:.2f} s; {args.old} vs {args.new}; p50 / p90 ms over {args.repeats}"
            )
            for label, path in (
                ("first page", BASE),
                (f"page={last // 2} (middle)", f"{BASE}?page={last // 2}"),
                (f"page={last} (last)", f"{BASE}?page={last}"),
            ):
                times = {"old": [], "new": []}
                for name in ("old", "new", "old", "new"):  # warm-ups
                    get(ports[name], token, path)
                for _ in range(args.repeats):
                    for name in ("old", "new"):
                        times[name].append(get(ports[name], token, path))
                p = {
                    name: (statistics.median(values), sorted(values)[int(len(values) * 0.9) - 1])
                    for name, values in times.items()
                }
                print(
                    f"  {label:<22} old {p['old'][0]:7.1f} / {p['old'][1]:7.1f}   new {p['new'][0]:7.1f} / "
                    f"{p['new'][1]:7.1f}   new/old {p['new'][0] / p['old'][0]:5.2f}",
                    flush=True,
                )
        finally:
            for process in servers:
                process.terminate()
                process.wait(timeout=30)
            if postgres:
                postgres_database(url, create=False)


if __name__ == "__main__":
    main()
