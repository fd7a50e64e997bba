"""Backup and restore of 10,000 images: time and archive size, against copying the same bytes.

    .venv/bin/python bench/bench_backup.py [--images 10000]

A fresh install in a temporary folder (SQLite file, local media): N images uploaded through the
ingest service (JPEG photos-like 320 x 240, one label each, with thumbnails), then
``manage.py backup``, then ``manage.py restore`` onto a second fresh install, each timed as a
whole command in its own process. The baseline, run the same way on the same files: ``tar`` of
the media folder plus SQLite's own ``.backup`` of the database file (the least a backup must
do: copy every byte once). Prints seconds, the archive's size, a command's start-up (``manage.py
check``: Django and its imports, inside both timings) and the ratio of the backup's own work
(its time less the start-up) to the baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

POPULATE = """
import io, sys
import numpy as np
from PIL import Image
from apps.workspaces import services as ws
from apps.tasks.services import task_create
from apps.labels.services import label_create
from apps.tasks.services import label_attach
from apps.images.services import training_image_ingest
from django.contrib.auth import get_user_model
user = get_user_model().objects.create_user("bench", password="bench-pw-1")
workspace = ws.workspace_ensure_default(user=user)
task = task_create(workspace=workspace, owner=user, name="bench", type="multi_class")
labels = [label_create(workspace=workspace, name=f"l{{i}}", type="category") for i in range(5)]
for label in labels:
    label_attach(label=label, task=task)
rng = np.random.default_rng(0)
base = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
for i in range({n}):
    noise = rng.integers(0, 40, (60, 80, 3), dtype=np.uint8)
    image = Image.fromarray(base + noise).resize((320, 240))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    training_image_ingest(workspace=workspace, data=out.getvalue(), label_ids=[labels[i % 5].id])
    if (i + 1) % 1000 == 0:
        print(f"{{i + 1}} images", flush=True)
"""


def _env(folder: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AWS_STORAGE_BUCKET_NAME")}
    env.update(
        DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}",
        VF_VAR_DIR=str(folder),
        VF_MEDIA_ROOT=str(folder / "media"),
        CELERY_BROKER_URL="filesystem://",
    )
    return env


def _manage(folder: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=_env(folder), check=True)
    return time.perf_counter() - started


def _baseline(folder: Path, work: Path) -> float:
    """tar of the media folder and SQLite's online backup of the database: every byte once."""
    started = time.perf_counter()
    with tarfile.open(work / "baseline.tar", "w") as archive:
        archive.add(folder / "media", arcname="media")
    source = sqlite3.connect(folder / "db.sqlite3")
    target = sqlite3.connect(work / "baseline.sqlite3")
    source.backup(target)
    source.close()
    target.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vf-bench-backup-"))
    try:
        source, target = work / "source", work / "target"
        for folder in (source, target):
            folder.mkdir()
            _manage(folder, "migrate", "--noinput", "-v", "0")
        print(f"uploading {args.images} images ...", flush=True)
        upload = _manage(source, "shell", "-c", POPULATE.format(n=args.images))
        print(f"uploaded in {upload:.0f} s", flush=True)
        archive = work / "backup.tar"
        startup = min(_manage(source, "check", "-v", "0") for _ in range(2))  # in each command's time
        baseline = _baseline(source, work)
        backup = _manage(source, "backup", str(archive), "-v", "0")
        restore = _manage(target, "restore", str(archive), "-v", "0")
        baseline_again = _baseline(source, work)  # the baseline twice, around ours: the disk's cache
        media = sum(p.stat().st_size for p in (source / "media").rglob("*") if p.is_file())
        floor = min(baseline, baseline_again)
        print()
        print(
            "| images | media bytes | archive bytes | backup s | restore s | start-up s | tar+db s | ratio |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        print(
            f"| {args.images:,} | {media:,} | {archive.stat().st_size:,} | {backup:.1f} | {restore:.1f} "
            f"| {startup:.1f} | {floor:.1f} | {(backup - startup) / floor:.2f} |"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
