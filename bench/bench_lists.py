"""List benchmark: server time of the training-image and label lists at 100 k and 1 M images.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/bench_lists.py
        [--sizes 100000,1000000] [--repeats 25]

PostgreSQL only. Creates its own database (``test_<name>`` of DATABASE_URL, migrated, dropped at
the end), one user with a token and one label, then fills the workspace in bulk SQL
(``tests/bulk.py``: every image carries the label, so it holds them all) up to each size,
``VACUUM ANALYZE`` (what autovacuum does on a live server) and ``CHECKPOINT`` (superuser: the
fill's writes stay out of the timings), and times each call in-process with DRF's test client
(the full Django stack: middleware, token, workspace, throttle, query, serialisation; no socket):
p50 and p90 over ``--repeats`` calls after two warm-ups.

The calls: the first page; ``page=N`` in the middle and at the end (25 per page); the page after
the middle one through its ``next`` link (a cursor, where the code hands one out); ``page_size=100``;
the first page filtered by the label; the label list. Not part of the test suite; 1 M rows take
about two minutes to write.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.postgres import bench_user, timed_get  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")  # no query log: as a production server runs

BASE = "/recognition/v2/training-image/"


def relative(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def measure(client, label_id, size: int, repeats: int) -> list[tuple[str, float, float]]:
    rows = []

    def run(name: str, url: str) -> dict:
        p50, p90, response = timed_get(client, url, repeats)
        body = response.json()
        rows.append((name, p50, p90))
        print(f"  {size:>9,} images  {name:<44} p50 {p50:7.1f} ms  p90 {p90:7.1f} ms", flush=True)
        return body

    first = run("first page (25)", BASE)
    assert first["count"] == size, first["count"]
    last_page = -(-size // 25)
    middle = run(f"page={last_page // 2} (middle)", f"{BASE}?page={last_page // 2}")
    run(f"page={last_page} (last)", f"{BASE}?page={last_page}")
    if "cursor=" in (middle["next"] or ""):
        run("middle page's next link (cursor)", relative(middle["next"]))
    run("page_size=100", f"{BASE}?page_size=100")
    run("labels=<the label> (first page)", f"{BASE}?labels={label_id}")
    labels = run("label list (one label holding every image)", "/recognition/v2/label/")
    assert labels["results"][0]["images_count"] == size
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()

    with bench_user() as (_, _, token, workspace):
        from django.db import connection
        from rest_framework.test import APIClient

        from apps.labels.models import Label
        from tests.bulk import fill_images

        label = Label.objects.create(workspace=workspace, name="all")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        filled = 0
        for size in (int(part) for part in args.sizes.split(",")):
            started = time.monotonic()
            fill_images(workspace_id=workspace.id, count=size - filled, start=filled, labels={label.id: 1})
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE images_trainingimage")
                cursor.execute("VACUUM ANALYZE images_imagelabel")
                # Write the fill's dirty pages out now, not in the middle of the timings.
                cursor.execute("CHECKPOINT")
            print(f"filled {size:,} images in {time.monotonic() - started:.0f} s", flush=True)
            filled = size
            measure(client, label.id, size, args.repeats)


if __name__ == "__main__":
    main()
