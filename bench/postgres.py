"""What the in-process PostgreSQL benchmarks share (bench_lists, bench_console, load_test,
bench_request_path): a throw-away database, a user with a workspace in it, and a timed GET."""

from __future__ import annotations

import os
import statistics
import sys
import time
from contextlib import contextmanager


@contextmanager
def throwaway_database():
    """Set Django up on ``test_<name>`` of DATABASE_URL, created and migrated now, dropped after;
    yields its name. Exits with a message when DATABASE_URL is not PostgreSQL."""
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL=postgres://... (the benchmark creates and drops test_<name>)")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield name
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


@contextmanager
def bench_user():
    """A throw-away database (``throwaway_database``) holding the user ``bench`` with its token and
    default workspace; yields (database name, user, token, workspace) and prints the database."""
    with throwaway_database() as database:
        from django.db import connection

        from apps.workspaces import services

        print(f"database {database} (PostgreSQL {connection.pg_version})")
        user, token = services.user_create(username="bench")
        yield database, user, token, services.workspace_ensure_default(user=user)


def timed_get(client, url: str, repeats: int):
    """(p50 ms, p90 ms, last response) of ``repeats`` GETs of ``url`` after two warm-ups, which
    must answer 200."""
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9) - 1], response
