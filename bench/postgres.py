"""A throw-away PostgreSQL database for the benchmarks that need one (bench_lists, bench_request_path)."""

from __future__ import annotations

import os
import sys
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
