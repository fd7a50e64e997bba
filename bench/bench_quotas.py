"""What quotas and the fair training queue cost, on PostgreSQL, against baselines in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/bench_quotas.py \
        [--uploads 96] [--threads 16] [--queued 200] [--workspaces 20]

- **Uploads**: ``--uploads`` drawn pictures stored through ``training_image_ingest`` by
  ``--threads`` threads at once, into a workspace without quotas (the baseline: no lock) and into
  one with image and byte quotas far above its use (every upload locks the workspace's image
  counter row from its check to its commit). Uploads per second and the ratio.
- **Claims**: ``--queued`` QUEUED versions spread over ``--workspaces`` workspaces; the time of one
  ``model_version_claim`` that picks fairly (orphan scan, the fair order) against one that claims
  the version its message names (``fair=False``, the old claim), each claimed version handed back
  at once. Median of the claims, and the ratio.

A throw-away database (bench/postgres.py). Absolute times move with the machine's load; the
ratios are what to compare.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import os  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from bench.postgres import throwaway_database  # noqa: E402


def _uploads_per_second(workspace, pictures: list[bytes], threads: int) -> float:
    from django.db import connection

    from apps.images.services import training_image_ingest

    work = list(pictures)
    lock = threading.Lock()

    def run() -> None:
        try:
            while True:
                with lock:
                    if not work:
                        return
                    data = work.pop()
                training_image_ingest(workspace=workspace, data=data)
        finally:
            connection.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return len(pictures) / (time.perf_counter() - started)


def _claim_ms(version_ids: list, fair: bool) -> float:
    from apps.training import services as training

    times = []
    for version_id in version_ids:
        started = time.perf_counter()
        version = training.model_version_claim(version_id=str(version_id), fair=fair)
        times.append((time.perf_counter() - started) * 1000)
        training.model_version_release(version_id=version.pk, reason="bench")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uploads", type=int, default=96)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--queued", type=int, default=200)
    parser.add_argument("--workspaces", type=int, default=20)
    args = parser.parse_args()

    with throwaway_database() as database:
        from django.conf import settings

        from apps.quotas.models import WorkspaceQuota
        from apps.training import services as training
        from apps.workspaces import services
        from tests.factories import ModelVersionFactory, TaskFactory
        from tests.pictures import picture

        settings.MEDIA_ROOT = Path(settings.VF_VAR_DIR) / "bench-quotas-media"
        training._enqueue = lambda version_id: None  # a handed-back version is not sent anywhere
        print(f"database {database}; {os.cpu_count()} cores; times move with the machine's load")
        free = services.workspace_ensure_default(user=services.user_create(username="free")[0])
        limited = services.workspace_ensure_default(user=services.user_create(username="limited")[0])
        WorkspaceQuota.objects.create(workspace=limited, images=10**9, stored_bytes=10**15)

        def drawn(offset: int) -> list[bytes]:
            return [
                picture(size=(64 + n % 50, 48 + n // 50), color=(n % 256, (n * 7 + offset) % 256, 90))
                for n in range(args.uploads)
            ]

        baseline = _uploads_per_second(free, drawn(0), args.threads)
        guarded = _uploads_per_second(limited, drawn(1), args.threads)
        print(f"uploads, {args.threads} threads: no quota {baseline:.1f}/s, with quotas {guarded:.1f}/s, "
              f"ratio {guarded / baseline:.2f}")  # fmt: skip

        queued = []
        workspaces = [
            services.workspace_ensure_default(user=services.user_create(username=f"w{n}")[0])
            for n in range(args.workspaces)
        ]
        for n in range(args.queued):
            task = TaskFactory(workspace=workspaces[n % len(workspaces)])
            queued.append(ModelVersionFactory(task=task, version=1, train_status="QUEUED").pk)
        sample = queued[:: max(1, len(queued) // 30)]
        old = _claim_ms(sample, fair=False)
        fair = _claim_ms(sample, fair=True)
        print(f"claim with {args.queued} queued in {len(workspaces)} workspaces: own version {old:.2f} ms, "
              f"fair {fair:.2f} ms, ratio {fair / old:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
