"""The quota rule, in one place: a write that would take a workspace past a limit is refused.

The services that write measure the use themselves, under their own locks (image ingest locks the
workspace's image counter row, ``task_train`` the workspace row), and ask ``quota_check`` before
they store; so concurrent writes cannot overshoot a limit (apps/images/services.py,
apps/training/services.py say how). The answer is ``QuotaExceededError``: 403 with the quota's
name, its limit and the current use (apps/core/errors.py).
"""

from __future__ import annotations

from apps.core.errors import QuotaExceededError

MSG_QUOTA = {
    "images": (
        "The workspace's quota of training images is reached: {used} of {limit}. Delete images, "
        "or ask the administrator for a larger quota."
    ),
    "stored_bytes": (
        "The workspace's storage quota is reached: {used} of {limit} bytes used, and this needs "
        "{adding} more. Delete images, or ask the administrator for a larger quota."
    ),
    "versions": (
        "The workspace's quota of model versions is reached: {used} of {limit} kept. Delete old "
        "versions to train again, or ask the administrator for a larger quota."
    ),
    "queued_trainings": (
        "The workspace's quota of trainings queued at once is reached: {used} of {limit} queued or "
        "running. Train again when one has finished."
    ),
}


def quota_check(*, quota: str, limit: int | None, used: int, adding: int = 1) -> None:
    """Raise ``QuotaExceededError`` when ``used + adding`` would pass ``limit`` (None: no limit).

    ``used`` is the use before this write, ``adding`` what the write adds (1 image, its bytes, 1
    version). A use already past a lowered limit refuses every further write, and nothing else:
    what is stored stays."""
    if limit is None or used + adding <= limit:
        return
    message = MSG_QUOTA[quota].format(used=used, limit=limit, adding=adding)
    raise QuotaExceededError(message, quota=quota, limit=limit, used=used)
