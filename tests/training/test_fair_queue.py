"""The training queue is fair between workspaces: each job message is a wake-up, and the claim
starts the queued version of the workspace whose turn it is (apps/training/services.py,
``_fair_queue``), with the real claim code and its locks; a worker is simulated by calling the
claim for each message in the order the broker hands them out. There is also
the same with a real worker process over Redis and PostgreSQL (the last test)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.tasks.services import label_attach, task_create
from apps.training import services as training
from apps.training.models import ModelVersion
from apps.workspaces.services import workspace_ensure_default
from tests.factories import ModelVersionFactory, TaskFactory, UserFactory, make_task
from tests.training.test_claims import _identity_of_a_finished_process
from tests.training.test_worker import broker, finished, wait_for, workers  # noqa: F401 - fixtures by name


def _queue(workspace, count: int) -> list[ModelVersion]:
    """``count`` QUEUED versions of as many tasks of ``workspace`` (one active version per task)."""
    return [
        ModelVersionFactory(task=TaskFactory(workspace=workspace), version=1, train_status="QUEUED")
        for _ in range(count)
    ]


def _workspace():
    return workspace_ensure_default(user=UserFactory())


def _run_one_worker(messages: list) -> list[ModelVersion]:
    """One worker with a prefetch of one: per message, claim, then finish what it claimed
    (failed: quick, and it frees the worker as a trained one would). The versions in the order
    they started."""
    started = []
    for message in messages:
        version = training.model_version_claim(version_id=str(message.pk))
        if version is not None:
            started.append(version)
            training.model_version_fail(version_id=version.pk, reason="done")
    return started


def test_a_workspace_with_one_training_starts_before_the_fifth_of_a_workspace_with_five(db):
    a, b = _workspace(), _workspace()
    queued_a = _queue(a, 5)
    queued_b = _queue(b, 1)

    started = _run_one_worker([*queued_a, *queued_b])  # the broker's order: A's five, then B's one

    assert sorted(v.pk for v in started) == sorted(v.pk for v in [*queued_a, *queued_b])  # each once
    order = [v.workspace_id for v in started]
    fifth_of_a = [i for i, ws in enumerate(order) if ws == a.pk][4]
    assert order.index(b.pk) < fifth_of_a
    assert order[:2] == [a.pk, b.pk]  # turns: A went first (it queued first), then B at once
    assert [v.pk for v in started if v.workspace_id == a.pk] == [v.pk for v in queued_a]  # A's in order


def test_workspaces_take_turns_while_each_has_trainings_queued(db):
    a, b, c = _workspace(), _workspace(), _workspace()
    queued = [*_queue(a, 3), *_queue(b, 3), *_queue(c, 2)]

    started = _run_one_worker(queued)

    order = [v.workspace_id for v in started]
    assert order == [a.pk, b.pk, c.pk, a.pk, b.pk, c.pk, a.pk, b.pk]


def test_the_workspace_with_a_training_running_waits_for_one_with_none(db):
    a, b = _workspace(), _workspace()
    first_a, second_a = _queue(a, 2)
    (only_b,) = _queue(b, 1)
    running = training.model_version_claim(version_id=str(first_a.pk))  # a second worker holds it

    claimed = training.model_version_claim(version_id=str(second_a.pk))

    assert running.pk == first_a.pk
    assert claimed.pk == only_b.pk  # A has one running, B none: B's turn, whichever message came
    second_a.refresh_from_db()
    assert second_a.train_status == "QUEUED"


def test_a_message_whose_version_is_finished_still_starts_the_next_queued_version(db, tmp_path):
    workspace = _workspace()
    done, waiting = _queue(workspace, 2)
    training.model_version_fail(version_id=done.pk, reason="finished meanwhile")

    claimed = training.model_version_claim(version_id=str(done.pk))  # a redelivered message

    assert claimed.pk == waiting.pk and claimed.train_status == "IN_TRAINING"
    assert training.model_version_claim(version_id=str(waiting.pk)) is None  # nothing left to start


def test_a_redelivered_message_takes_over_the_version_its_dead_worker_held(db):
    """The worker that died held another version than its message named (fair pick): the
    redelivered message finds that version at once, before any queued one."""
    workspace = _workspace()
    named, held = _queue(workspace, 2)
    ModelVersion.objects.filter(pk=held.pk).update(
        train_status="IN_TRAINING",
        heartbeat=timezone.now(),
        started=timezone.now(),
        attempts=1,
        claimed_by=_identity_of_a_finished_process(),
    )

    claimed = training.model_version_claim(version_id=str(named.pk))

    assert claimed.pk == held.pk and claimed.attempts == 2
    named.refresh_from_db()
    assert named.train_status == "QUEUED"


def test_an_eager_job_claims_only_the_version_it_names(db):
    a, b = _workspace(), _workspace()
    (older,) = _queue(a, 1)
    (named,) = _queue(b, 1)

    claimed = training.model_version_claim(version_id=str(named.pk), fair=False)

    assert claimed.pk == named.pk
    older.refresh_from_db()
    assert older.train_status == "QUEUED"


@pytest.mark.services
@pytest.mark.slow
def test_with_a_real_worker_a_workspace_with_one_training_starts_before_the_fifth_of_one_with_five(
    broker,  # noqa: F811
    workers,  # noqa: F811
):
    """Workspace A queues 5 trainings, then B queues 1, through task_train and Redis, before a
    worker (the prefork pool, one process, as production runs it) starts: B's starts second."""
    a_user, b_user = UserFactory(), UserFactory()
    a, b = _workspace_of(a_user), _workspace_of(b_user)
    first, labels = make_task(a, a_user, per_label=5, seed=1)
    tasks_a = [first]
    for n in range(4):  # four more tasks on the same labelled images
        task = task_create(workspace=a, owner=a_user, name=f"more {n}", type="multi_class")
        for label in labels:
            label_attach(label=label, task=task)
        tasks_a.append(task)
    task_b, _ = make_task(b, b_user, per_label=5, seed=2)
    queued_a = [training.task_train(task=task, user=a_user) for task in tasks_a]
    queued_b = training.task_train(task=task_b, user=b_user)

    worker = workers(VF_TRAIN_EPOCHS="1")
    done = [wait_for(lambda v=v: finished(v.pk), f"version {v.pk}", worker) for v in [*queued_a, queued_b]]

    order = [v.workspace_id for v in sorted(done, key=lambda v: v.started)]
    fifth_of_a = [i for i, ws in enumerate(order) if ws == a.pk][4]
    assert order.index(b.pk) < fifth_of_a, order
    assert order.index(b.pk) == 1  # A queued first and went first; then B's turn
    assert all(v.attempts == 1 for v in done)  # each started once


def _workspace_of(user):
    return workspace_ensure_default(user=user)
