"""Redis restarted with its data lost while one version trains and two wait QUEUED: every version
reaches TRAINED, and none is trained twice.

The restart is done to the real Redis, on the fault tests' own database only (FAULTS_REDIS_DB), so
the other tests' databases are not touched: FLUSHDB (it keeps nothing on disk here, so a restart
loses every message: the two waiting ones, and the one being worked on, which Redis keeps among
the unacknowledged) and CLIENT KILL of every connection to that database (the worker's, its
beat's and the test's own), as a restart drops them. The worker runs with beat (-B), as
scripts/run.sh and compose run the training worker: its sweep finds the QUEUED versions whose
messages are gone and sends them again, once each (apps/training/services.py).
"""

from __future__ import annotations

import pytest

from apps.training.models import ModelVersion
from tests.factories import make_task
from tests.faults.conftest import FAULTS_REDIS_DB, wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _restart_without_data(url: str) -> int:
    """What a Redis restart does to one database: its keys gone, its connections dropped. Returns
    how many connections were cut."""
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    me = client.client_id()
    cut = 0
    for entry in client.client_list():
        if int(entry["db"]) == FAULTS_REDIS_DB and int(entry["id"]) != me:
            cut += client.client_kill_filter(_id=entry["id"])
    client.close()
    return cut


def test_every_version_is_trained_once_after_redis_restarts_empty(
    api, user, workspace, faults_redis, start_worker, tmp_path
):
    import redis

    tasks = []
    for n, budget in enumerate((20, 6, 6)):  # the first one trains through the restart
        task, _ = make_task(workspace, user, per_label=6, seed=n)
        task.train_time_budget = budget
        task.save(update_fields=["train_time_budget"])
        tasks.append(task)
    worker = start_worker(
        args=("-B", "--schedule", str(tmp_path / "celerybeat-schedule")),
        VF_TRAIN_EPOCHS="500",
        VF_TRAINING_SWEEP_INTERVAL="2",
    )
    training = api.post(f"/recognition/v2/task/{tasks[0].id}/train/").json()
    wait_until(
        lambda: ModelVersion.objects.filter(
            pk=training["id"], train_status="IN_TRAINING", epoch__gte=1
        ).exists(),
        "the first training to be under way",
        log=worker.text,
    )
    queued = [api.post(f"/recognition/v2/task/{task.id}/train/").json() for task in tasks[1:]]
    assert [v["train_status"] for v in queued] == ["QUEUED", "QUEUED"]
    assert redis.Redis.from_url(faults_redis).llen("training") == 2  # waiting behind the first

    assert _restart_without_data(faults_redis) >= 1
    assert redis.Redis.from_url(faults_redis).llen("training") == 0  # every message is gone

    ids = [training["id"], *(v["id"] for v in queued)]
    wait_until(
        lambda: (
            not ModelVersion.objects.filter(pk__in=ids, train_status__in=("QUEUED", "IN_TRAINING")).exists()
        ),
        "every version to finish",
        timeout=300,
        log=worker.text,
    )
    versions = {str(v.pk): v for v in ModelVersion.objects.filter(pk__in=ids)}
    assert {pk: v.train_status for pk, v in versions.items()} == dict.fromkeys(ids, "TRAINED"), {
        pk: v.metrics for pk, v in versions.items()
    }
    # The log line comes right after the commit: wait for the last one.
    wait_until(
        lambda: all(f"model version {pk} trained" in worker.text() for pk in ids), "the log", timeout=30
    )
    log = worker.text()
    for pk in ids:
        assert versions[pk].attempts == 1, (pk, versions[pk].attempts)  # claimed once
        assert log.count(f"model version {pk} trained") == 1  # and trained once
    assert "sweep: requeued 2" in log  # the waiting ones came back through the sweep
