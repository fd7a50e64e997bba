"""Profile and time the small API calls of issue 15 in-process (DRF's test client, DEBUG off).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \\
    VF_CACHE_URL=redis://127.0.0.1:6379/1 .venv/bin/python bench/profile_request_path.py \\
        [--images 2000] [--repeats 200] [--rounds 5] [--profile URL] [--sort cumulative] [--top 40]

Creates its own database (``bench_user``), fills the user's workspace with ``--images`` images in
bulk SQL (every second one carries a label), then, over ``--rounds`` rounds, times ``GET
recognition/v2/task/`` (empty), the first training-image page (25) and ``page_size=100``: p50 per
round and the best p50 of the rounds (the machine is shared: the best round is the least
disturbed). With ``--profile URL`` it runs cProfile over ``--repeats`` calls of that URL instead
and prints the top functions. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ["VF_THROTTLE_USER"] = os.environ["VF_THROTTLE_ANON"] = "100000/min"

from bench.postgres import bench_user  # noqa: E402

CALLS = [
    ("task/ (empty)", "/recognition/v2/task/"),
    ("training-image/ (25)", "/recognition/v2/training-image/"),
    ("training-image/?page_size=100", "/recognition/v2/training-image/?page_size=100"),
]


def p50(client, url: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content[:300]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", default="")
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--callers", default="", help="also print the callers of functions matching this")
    args = parser.parse_args()

    with bench_user() as (_, _, token, workspace):
        from django.core.cache import cache
        from django.db import connection
        from rest_framework.test import APIClient

        from apps.labels.models import Label
        from tests.bulk import fill_images

        cache.clear()
        label = Label.objects.create(workspace=workspace, name="half")
        fill_images(workspace_id=workspace.id, count=args.images, labels={label.id: 2})
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE images_trainingimage")
            cursor.execute("VACUUM ANALYZE images_imagelabel")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        for _, url in CALLS:
            for _ in range(20):
                client.get(url)
        if args.profile:
            # CPU time of this thread: on a shared machine wall time charges other processes' slices
            # to whichever function was running when the scheduler stepped in.
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            for _ in range(args.repeats):
                client.get(args.profile)
            profiler.disable()
            stats = pstats.Stats(profiler).strip_dirs().sort_stats(args.sort)
            stats.print_stats(args.top)
            if args.callers:
                stats.print_callers(args.callers)
            return
        best = {name: float("inf") for name, _ in CALLS}
        for round_ in range(args.rounds):
            line = []
            for name, url in CALLS:
                value = p50(client, url, args.repeats)
                best[name] = min(best[name], value)
                line.append(f"{name} {value:6.2f}")
            print(f"round {round_ + 1}: " + "  ".join(line) + " ms (p50)", flush=True)
        for name, _ in CALLS:
            print(f"  best p50  {name:<32} {best[name]:6.2f} ms", flush=True)


if __name__ == "__main__":
    main()
