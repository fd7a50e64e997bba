"""What every kind's trainer shares: the version's split, the fit's share of the time budget, and
local files of the training images for ml to decode.

A trainer (apps/recognition/training.py, apps/detection/training.py) runs inside the training job,
after the lifecycle (services.py) claimed the version and started its heartbeat.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.tasks.models import Task

from .models import ModelVersion

logger = logging.getLogger(__name__)

TEST_FRACTION = 0.2
# Seconds of the training budget kept for what follows the fit (artifact upload, finishing), and
# the least a fit gets however late it starts.
JOB_RESERVE_S = 2.0
MIN_FIT_BUDGET_S = 5.0
SPOOL_CHUNK_BYTES = 1 << 20


def fit_budget(version: ModelVersion) -> float | None:
    """Seconds the fit may take so that the whole job, from the claim to TRAINED, keeps within
    the budget: what the job already spent (loading the examples, the split) and a reserve for
    uploading the artifacts and finishing are taken off. None = no budget."""
    budget = version.task.train_time_budget or settings.VF_TRAIN_TIME_BUDGET
    if not budget:
        return None
    spent = (timezone.now() - version.started).total_seconds() if version.started else 0.0
    return max(budget - spent - JOB_RESERVE_S, MIN_FIT_BUDGET_S)


def split_seed(task: Task, version: int) -> int:
    digest = hashlib.sha256(f"{task.id}:{version}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def split_and_record(
    *, version: ModelVersion, image_ids: list[str], strata: list, test_images: list[bool]
) -> tuple[list[bool], int]:
    """The version's 80/20 split: stratified, seeded by task and version, ``test_image`` always
    test; recorded on the version (``split``). Returns the test mask and the seed."""
    from ml.split import stratified_split

    seed = split_seed(version.task, version.version)
    test_mask = stratified_split(image_ids, strata, test_images, test_fraction=TEST_FRACTION, seed=seed)
    split = {
        "seed": seed,
        "train": [i for i, test in zip(image_ids, test_mask, strict=True) if not test],
        "test": [i for i, test in zip(image_ids, test_mask, strict=True) if test],
    }
    ModelVersion.objects.filter(pk=version.pk).update(split=split, heartbeat=timezone.now())
    return test_mask, seed


SPOOL_THREADS = 8  # images fetched from a remote storage at once


def _spool(name: str, folder: str) -> str:
    """Stream one stored image into ``folder``; its local path ('' when it cannot be read: ml
    skips it with a warning rather than failing the training)."""
    target = os.path.join(folder, hashlib.sha256(name.encode()).hexdigest())
    try:
        with default_storage.open(name, "rb") as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink, SPOOL_CHUNK_BYTES)
    except Exception:
        logger.warning("cannot read training image %s", name, exc_info=True)
        return ""
    return target


def image_sources(names: list[str], spool_dir: str) -> list[str]:
    """Local paths for ml to decode: the files themselves on local storage; on a remote storage
    (S3) each image streamed to a file under ``spool_dir``, a few at a time, so memory does not grow
    with the set (the heartbeat already runs: apps/training/services.py starts it first)."""
    try:
        return [default_storage.path(name) for name in names]
    except NotImplementedError:
        pass
    with ThreadPoolExecutor(max_workers=SPOOL_THREADS, thread_name_prefix="spool") as pool:
        return list(pool.map(lambda name: _spool(name, spool_dir), names))
