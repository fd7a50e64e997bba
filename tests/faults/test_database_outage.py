"""PostgreSQL goes away for a few seconds while clients upload and a worker trains: every request
meanwhile answers a JSON 503 with Retry-After (never an HTML 500; a console page, a plain 503
with Retry-After), the uploads that answered 201 are all there with their files and labels, and the
training reaches TRAINED afterwards.

The web server (gunicorn) and the Celery worker are real processes that reach PostgreSQL through
a TCP proxy in the test process (tests/faults/proxy.py); cutting it resets their connections and
refuses new ones, as a restart of the server does, without touching the machine's PostgreSQL.
"""

from __future__ import annotations

import base64
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from apps.backups.services import storage_check
from apps.core.errors import DATABASE_RETRY_AFTER_S, MSG_DATABASE_UNAVAILABLE
from apps.images.models import TrainingImage
from apps.labels.services import label_create
from apps.training.models import ModelVersion
from apps.workspaces import services as workspaces
from tests.factories import make_task
from tests.faults.conftest import call, database_url, wait_until
from tests.pictures import picture

pytestmark = [pytest.mark.services, pytest.mark.slow]

CLIENTS = 8
OUTAGE_S = 4.0


def test_requests_answer_json_503_while_postgresql_is_away_and_the_training_finishes(
    user, workspace, postgres_proxy, faults_redis, start_web, start_worker, settings
):
    task, _ = make_task(workspace, user, per_label=8)
    # The training runs through the outage: long enough to be cut, short enough for a test.
    task.train_time_budget = 25
    task.save(update_fields=["train_time_budget"])
    side_label = label_create(workspace=workspace, name="uploaded meanwhile", type="category")
    token = str(workspaces.token_get_or_create(user=user))
    through_proxy = database_url(postgres_proxy.port)
    web = start_web(DATABASE_URL=through_proxy, CELERY_BROKER_URL=faults_redis)
    worker = start_worker(DATABASE_URL=through_proxy, VF_TRAIN_EPOCHS="500", VF_TRAINING_STALE_AFTER="60")

    status, queued, _ = call(web.base, token, "POST", f"/recognition/v2/task/{task.id}/train/", {})
    assert status == 200, queued
    wait_until(
        lambda: ModelVersion.objects.filter(
            pk=queued["id"], train_status="IN_TRAINING", epoch__gte=1
        ).exists(),
        "the training to be under way",
        log=worker.text,
    )

    answers: list[tuple[float, int, object, object]] = []  # (time, status, body, Retry-After)
    created: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        for step in range(10_000):
            if stop.is_set():
                return
            colour = ((n * 37 + step * 11) % 256, (step * 53) % 256, (n * 91 + step) % 256)
            body = {
                "base64": base64.b64encode(picture(size=(40 + n, 30 + step % 50), color=colour)).decode(),
                "labels": [str(side_label.id)],
            }
            status, answer, headers = call(web.base, token, "POST", "/recognition/v2/training-image/", body)
            with lock:
                answers.append((time.monotonic(), status, answer, headers.get("Retry-After")))
                if status == 201:
                    created.append(answer["id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    postgres_proxy.cut()
    cut_at = time.monotonic()
    time.sleep(1)
    # A page of the console (a plain Django view) whose session the database would have to load.
    page = urllib.request.Request(
        web.base + "/console/", headers={"Cookie": "sessionid=" + "a" * 32, "Accept": "text/html"}
    )
    try:
        urllib.request.urlopen(page, timeout=30)  # noqa: S310 - loopback only
        pytest.fail("the console answered while the database was away")
    except urllib.error.HTTPError as exc:
        console = (
            exc.code,
            exc.headers.get("Content-Type"),
            exc.headers.get("Retry-After"),
            exc.read().decode(),
        )
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
    postgres_proxy.restore()
    back_at = time.monotonic()
    time.sleep(4)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)

    statuses = Counter(status for _, status, _, _ in answers)
    unexpected = [(s, b) for _, s, b, _ in answers if s not in (201, 503)]
    assert not unexpected, f"{unexpected[:5]}\n{web.text()[-4000:]}"
    during = [a for a in answers if cut_at + 0.5 < a[0] < back_at]
    assert during and all(status == 503 for _, status, _, _ in during), statuses
    for _, status, body, retry_after in answers:
        if status == 503:
            assert body == {"detail": MSG_DATABASE_UNAVAILABLE}
            assert retry_after == str(DATABASE_RETRY_AFTER_S)
    assert any(status == 201 and at > back_at for at, status, _, _ in answers), statuses  # it came back
    assert console == (
        503,
        "text/plain; charset=utf-8",
        str(DATABASE_RETRY_AFTER_S),
        MSG_DATABASE_UNAVAILABLE,
    )

    # Every upload that answered 201 is there, with its label, its file and its thumbnail.
    images = {str(i.id): i for i in TrainingImage.objects.filter(id__in=created).prefetch_related("labels")}
    assert sorted(images) == sorted(created)
    media = Path(settings.MEDIA_ROOT)
    for image in images.values():
        assert [str(label.id) for label in image.labels.all()] == [str(side_label.id)]
        assert (media / image.file).stat().st_size > 0
        assert (media / image.thumbnail).stat().st_size > 0
    # No row without its file. An upload whose COMMIT the cut interrupted keeps its files (the
    # server may have committed it); if it had not, they are orphans, which --fix removes.
    report = storage_check(min_age=0)
    assert report.missing == []
    assert len(report.orphan_files) <= 2 * statuses[503], report.orphan_files

    # The training went on through the outage and finished, in its first attempt.
    version = wait_until(
        lambda: ModelVersion.objects.filter(pk=queued["id"], train_status__in=("TRAINED", "FAILED")).first(),
        "the training to finish",
        log=worker.text,
    )
    assert version.train_status == "TRAINED", version.metrics
    assert version.attempts == 1
    assert "not written" in worker.text()  # the worker did lose the database meanwhile
    assert postgres_proxy.connections > 0
