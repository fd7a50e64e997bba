"""Training orchestration: start a training, run it in a worker, deploy, delete, sweep.

The request side (``task_train``) validates and queues a version; the worker side
(``model_version_claim`` -> ``model_version_train`` -> ``model_version_finish`` or
``model_version_fail``) runs it; ``model_versions_sweep`` rescues versions a dead worker left
behind. A version's life: QUEUED -> IN_TRAINING -> TRAINED | FAILED (the sweep may move a
dead IN_TRAINING back to QUEUED once; ``model_version_release`` hands one back to the queue when
its worker stops or loses the database, without counting the attempt).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Count, F, Max, Min, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from apps.core.broker import broker_reachable, job_enqueue, waiting_messages
from apps.core.errors import (
    DATABASE_UNAVAILABLE,
    ConflictError,
    DomainError,
    ServiceUnavailableError,
    is_storage_full,
)
from apps.core.kinds import KINDS
from apps.quotas import selectors as quota_selectors
from apps.quotas.services import quota_check
from apps.tasks.models import Task
from apps.workspaces.models import Workspace
from ml.config import finite

from . import artifacts, claims
from .fitting import image_sources
from .job_names import INT8_JOB, TRAIN_JOB, TRAINING_QUEUE
from .models import ModelVersion
from .selectors import INT8_PENDING, INT8_RUNNING, model_version_active, model_version_split_files
from .signals import version_failed, version_serving_settled, version_started, version_trained

logger = logging.getLogger(__name__)

Status = ModelVersion.Status

MSG_DELETE_PRODUCTION = "The production version of a task cannot be deleted; deploy another version first."
MSG_DELETE_ACTIVE = "A model version that is queued or training cannot be deleted."
MSG_WORKER_LOST = "The worker training this version stopped responding ({attempts} attempts)."
MSG_NEVER_STARTED = "No worker started this training within {hours:g} hours."
MSG_TIME_LIMIT = "Training exceeded its time limit."
MSG_STORAGE_FULL = (
    "The storage is full: the trained model's files could not be saved. Free space on the media "
    "volume and train again; the deployed version is unchanged."
)
MSG_QUEUE_DOWN = (
    "The job queue is unreachable, so the training cannot start; nothing was queued. Try again later."
)
MSG_EXPORT_NOT_TRAINED = "Only a TRAINED model version can be downloaded."
MSG_NO_ONNX = (
    "ONNX export is not available for this {task_type} model (trained before detectors were exported); "
    "download the bundle instead."
)

PROGRESS_MIN_INTERVAL_S = 1.0  # at most one progress write per second

# The states of a version's INT8 attempt (metrics["serving"]["int8"]; ml/recognition/serving.py).
INT8_FAILED = "failed"  # INT8_PENDING and INT8_RUNNING: selectors


# --------------------------------------------------------------------------- request side


def _enqueue(version_id) -> None:
    try:
        job_enqueue(TRAIN_JOB, str(version_id))
    except Exception:
        # Broker down: the version stays QUEUED and the sweep enqueues it again later. The
        # request already committed, so answering 500 here would only hide the version.
        logger.exception("could not enqueue training of model version %s", version_id)


def _lock_task(task_id) -> Task:
    """The task row, locked until the transaction ends: train requests of one task run one by one.

    PostgreSQL: SELECT ... FOR UPDATE. SQLite ignores FOR UPDATE; a (no-op) write first takes its
    database write lock instead, before anything is read, so a second request waits rather than
    reading the same "no version yet" and failing on the unique version number.
    """
    if connection.vendor == "sqlite":
        Task.objects.filter(pk=task_id).update(last_train_status=F("last_train_status"))
    return Task.objects.select_for_update().get(pk=task_id)


def _check_training_quotas(workspace_id) -> None:
    """Refuse (403) a new version past the workspace's quota of versions kept or trainings queued
    at once. With either limit set, the workspace row is locked first (FOR NO KEY UPDATE: rows
    that only point at the workspace are not held up), so train requests of its different tasks
    count one after another and never pass a limit together. Called with the task row locked: the
    order is task, then workspace."""
    limits = quota_selectors.quota_limits(workspace_id=workspace_id)
    if limits["versions"] is None and limits["queued_trainings"] is None:
        return
    Workspace.objects.select_for_update(no_key=True).filter(pk=workspace_id).first()
    versions = ModelVersion.objects.filter(workspace_id=workspace_id)
    if limits["versions"] is not None:
        quota_check(quota="versions", limit=limits["versions"], used=versions.count())
    if limits["queued_trainings"] is not None:
        active = versions.filter(train_status__in=(Status.QUEUED, Status.IN_TRAINING)).count()
        quota_check(quota="queued_trainings", limit=limits["queued_trainings"], used=active)


def task_train(*, task: Task, user=None) -> ModelVersion:
    """Queue the next model version of ``task`` for training and return it.

    Validates first (labels, images per label). While a version is QUEUED or IN_TRAINING it
    creates nothing and returns that version. The task row is locked for the check-and-create,
    so concurrent requests queue one training; the job is enqueued after commit. A new version
    past the workspace's quotas (versions kept, trainings queued at once) is refused with 403.

    With the broker down it answers 503 and creates nothing, rather than leaving a version QUEUED
    that no worker will hear of (if the broker dies between this check and the enqueue, the
    version stays QUEUED and the sweep enqueues it again).
    """
    if not broker_reachable():
        raise ServiceUnavailableError(MSG_QUEUE_DOWN)
    with transaction.atomic():
        task = _lock_task(task.pk)
        active = model_version_active(task=task)
        if active is not None:
            return active
        _check_training_quotas(task.workspace_id)
        KINDS.get(task.type).trainer.validate(task=task)
        last = task.versions.aggregate(n=Max("version"))["n"] or 0
        version = ModelVersion.objects.create(
            workspace_id=task.workspace_id,
            task=task,
            version=last + 1,
            train_status=Status.QUEUED,
            heartbeat=timezone.now(),  # for a QUEUED version: when it was (re)enqueued
        )
        Task.objects.filter(pk=task.pk).update(last_train_status=Task.TrainStatus.IN_TRAINING)
        transaction.on_commit(partial(_enqueue, version.id))
    logger.info("queued %s v%d for training (by %s)", task.id, version.version, getattr(user, "pk", None))
    return version


def model_version_download(*, version: ModelVersion, artifact: str = "bundle"):
    """The file to download for a TRAINED version: ``bundle`` (zip: weights, model.json, ONNX,
    README; a temp file the caller deletes) or ``onnx`` (the cached ONNX export).
    Returns ``(path, filename, is_temporary)``."""
    if version.train_status != Status.TRAINED or not version.artifact_path:
        raise DomainError(MSG_EXPORT_NOT_TRAINED)
    stem = f"{version.task.name}-v{version.version}".replace("/", "_").replace('"', "")
    if artifact == "onnx":
        if version.task.type in artifacts.EXPORTED_AT_TRAINING and not artifacts.has_served_onnx(version):
            raise DomainError(MSG_NO_ONNX.format(task_type=version.task.type))
        return artifacts.onnx_file(version), f"{stem}.onnx", False
    return artifacts.bundle_file(version), f"{stem}.zip", True


def model_version_delete(*, version: ModelVersion) -> None:
    """Delete a version and (after commit) its files. Not the production or an active version."""
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=version.task_id)
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.train_status == Status.TRAINED and task.production_version == version.version:
            raise DomainError(MSG_DELETE_PRODUCTION)
        if version.train_status in (Status.QUEUED, Status.IN_TRAINING):
            raise ConflictError(MSG_DELETE_ACTIVE)
        version.delete()  # its files go after the commit (apps/training/signals.py)


# --------------------------------------------------------------------------- worker side


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.VF_TRAINING_STALE_AFTER)


def _lock_task_of(version_id) -> bool:
    """Lock the task row of a version (False when the version is gone).

    One lock order everywhere: the task, then its versions (task deletion, deployment, training
    requests and the worker all take them so), so two of them never wait on each other in a circle.
    """
    task_id = ModelVersion.objects.filter(pk=version_id).values_list("task_id", flat=True).first()
    if task_id is None:
        return False
    Task.objects.select_for_update().filter(pk=task_id).first()
    return True


def _lock_unfinished_version(version_id) -> ModelVersion | None:
    """The version row (its task's first) locked until the transaction ends, or None if gone,
    TRAINED or FAILED."""
    if not _lock_task_of(version_id):
        return None
    version = (
        ModelVersion.objects.select_for_update(of=("self",))
        .select_related("task", "task__owner")
        .filter(pk=version_id)
        .first()
    )
    if version is None or version.train_status in (Status.TRAINED, Status.FAILED):
        return None
    return version


# At most this many queued versions are tried by one claim when others take them first.
CLAIM_CANDIDATES = 20


def _fair_queue(limit: int = CLAIM_CANDIDATES) -> list:
    """QUEUED version ids in the order a worker should start them: fair between workspaces.

    Workspaces take turns: the one with the fewest trainings running goes first, then the one
    whose last training started longest ago (never: first), then the one waiting longest. Within
    a workspace, oldest first. The ids interleave the workspaces (the first of each, then the
    second of each, ...), so a claim that loses its first pick to a concurrent worker takes the
    next workspace's turn rather than a second one of the same workspace. Three queries, whatever
    the length of the queue.
    """
    queued = ModelVersion.objects.filter(train_status=Status.QUEUED)
    heads = {
        row["workspace_id"]: row["oldest"]
        for row in queued.values("workspace_id").annotate(oldest=Min("created")).order_by()
    }
    if not heads:
        return []
    turns = (
        ModelVersion.objects.filter(workspace_id__in=heads)
        .values("workspace_id")
        .annotate(running=Count("pk", filter=Q(train_status=Status.IN_TRAINING)), last_start=Max("started"))
        .order_by()
    )
    never = timezone.now() - timedelta(days=365 * 100)
    order = sorted(
        turns,
        key=lambda t: (t["running"], t["last_start"] or never, heads[t["workspace_id"]], t["workspace_id"]),
    )
    turn = {t["workspace_id"]: i for i, t in enumerate(order[:limit])}
    ranked = (
        queued.filter(workspace_id__in=turn)
        .annotate(rank=Window(RowNumber(), partition_by=F("workspace_id"), order_by=(F("created"), F("pk"))))
        .filter(rank__lte=limit)
        .values_list("workspace_id", "pk")
    )
    per_workspace = [[] for _ in turn]
    for workspace_id, pk in ranked.order_by("workspace_id", "created", "pk"):
        per_workspace[turn[workspace_id]].append(pk)
    interleaved = [ids[i] for i in range(limit) for ids in per_workspace if i < len(ids)]
    return interleaved[:limit]


def _claim_candidates(version_id, *, fair: bool):
    """The versions one train job tries to claim, in order (ids; each is locked and checked again).

    Each job message is a wake-up: one message per QUEUED version, and whoever receives one starts
    the version that is next by ``_fair_queue``, not necessarily the one it names; that version's
    own message later starts another. First, though, what must be taken over at once: the
    message's own version when it is IN_TRAINING (a redelivered job whose worker died), then any
    version held by a worker process of this machine that is gone (it may have been training a
    version other than its message's). Without ``fair`` (eager jobs: no queue, each job runs when
    it is sent) only the message's own version.
    """
    yield version_id
    if not fair:
        return
    training = ModelVersion.objects.filter(train_status=Status.IN_TRAINING).values_list("pk", "claimed_by")
    for pk, claimed_by in list(training):
        if claims.claim_holder_is_gone(claimed_by):
            yield pk
    yield from _fair_queue()
    # Last, the message's own version if still QUEUED: when concurrent claims took every fair pick
    # first (more than CLAIM_CANDIDATES at once), this message must not go unused while it waits.
    yield version_id


def _claimable(version: ModelVersion, *, queued: bool) -> bool:
    """Whether a locked, unfinished version may be claimed now: QUEUED (when ``queued``), or
    IN_TRAINING with a stale heartbeat or a worker process of this machine that is gone."""
    if version.train_status == Status.QUEUED:
        return queued
    if version.heartbeat and version.heartbeat > _stale_before():
        if not claims.claim_holder_is_gone(version.claimed_by):
            logger.info("model version %s is being trained by a live worker; skipping", version.pk)
            return False
        logger.warning(
            "model version %s: its worker process %s is gone; taking over", version.pk, version.claimed_by
        )
    return True


def model_version_claim(*, version_id, fair: bool = True) -> ModelVersion | None:
    """Mark a version IN_TRAINING for this worker process; None when there is nothing to do.

    The message names ``version_id``, but the version claimed is the fairest to start
    (``_claim_candidates``): an A queuing many trainings cannot make a B wait behind all of them.
    The caller trains the version returned, whichever it is.

    Safe to call twice: TRAINED/FAILED versions and versions another live worker is training
    (fresh heartbeat) are skipped, and every candidate is checked again under its task's lock, so
    no version is claimed twice. A fresh heartbeat of a worker process that died on this machine
    does not count: a redelivered job takes over at once (apps/training/claims.py). A version out
    of attempts is failed and returned (FAILED) so the caller can tell its owner.
    """
    tried = set()
    for position, candidate in enumerate(_claim_candidates(version_id, fair=fair)):
        if str(candidate) in tried:
            continue
        if position > 0 or not fair:  # the message's own version may come again, from the queue
            tried.add(str(candidate))
        with transaction.atomic():
            version = _lock_unfinished_version(candidate)
            # The message's own version is claimed from QUEUED only when not fair (the fair queue
            # decides which QUEUED version goes next); any candidate may be taken over.
            if version is None or not _claimable(version, queued=position > 0 or not fair):
                continue
            if version.attempts >= settings.VF_TRAINING_MAX_ATTEMPTS:
                return _fail_locked(version, MSG_WORKER_LOST.format(attempts=version.attempts))
            return _mark_claimed(version)
    return None


def _mark_claimed(version: ModelVersion) -> ModelVersion:
    now = timezone.now()
    version.train_status = Status.IN_TRAINING
    version.started = version.heartbeat = now
    version.finished = None
    version.progress = 0.0
    version.epoch = version.loss = None
    version.stage = "starting"
    version.attempts += 1
    version.claimed_by = claims.worker_identity()
    version.save(
        update_fields=[
            "train_status",
            "started",
            "heartbeat",
            "finished",
            "progress",
            "epoch",
            "loss",
            "stage",
            "attempts",
            "claimed_by",
        ]
    )
    Task.objects.filter(pk=version.task_id).update(last_train_status=Task.TrainStatus.IN_TRAINING)
    transaction.on_commit(partial(version_started.send_robust, sender=ModelVersion, version=version))
    return version


def _fail_locked(version: ModelVersion, reason: str) -> ModelVersion:
    version.train_status = Status.FAILED
    version.finished = timezone.now()
    version.metrics = {**(version.metrics or {}), "error": reason}
    version.stage = ""
    version.save(update_fields=["train_status", "finished", "metrics", "stage"])
    Task.objects.filter(pk=version.task_id).update(last_train_status=Task.TrainStatus.FAILED)
    transaction.on_commit(partial(version_failed.send_robust, sender=ModelVersion, version=version))
    logger.warning("model version %s failed: %s", version.pk, reason)
    return version


def model_version_fail(*, version_id, reason: str) -> ModelVersion | None:
    """Mark a version FAILED with ``reason`` in ``metrics.error``; a finished version is left alone.

    Returns the FAILED version, or None when there was nothing to fail.
    """
    with transaction.atomic():
        version = _lock_unfinished_version(version_id)
        if version is None:
            return None
        return _fail_locked(version, reason[:2000])


def failure_reason(exc: BaseException) -> str:
    """What the owner reads in ``metrics.error``: ml's own messages as they are, else the type too."""
    from ml.models import PretrainedLoadError

    if is_storage_full(exc):
        return MSG_STORAGE_FULL
    if isinstance(exc, (PretrainedLoadError, ValueError)):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def progress_stage(info: dict) -> str:
    """ml's progress info in words: its ``stage`` ("features of ..."), for the candidate it is
    about; an epoch alone means a net (or the detector) is training."""
    candidate = info.get("candidate")
    stage = info.get("stage") or ("training" if info.get("epoch") is not None else "")
    text = f"{candidate}: {stage}" if candidate and stage else stage
    return text[: ModelVersion._meta.get_field("stage").max_length]


def _forget_broken_connection() -> None:
    """After a database error, drop this thread's connection if it is broken, so the next query
    opens a new one: Django does that at the start and end of a request, and a job has neither.
    Never inside a transaction (eager jobs in tests run inside the caller's)."""
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def with_database_patience(call, *, what: str):
    """``call()``, tried again while the database is unavailable (a restart, a fail-over, the
    network), for up to VF_TRAINING_STALE_AFTER seconds: past that the sweep takes the version as
    left behind anyway. Then the error stands."""
    deadline = time.monotonic() + settings.VF_TRAINING_STALE_AFTER
    delay = 0.5
    while True:
        try:
            return call()
        except DATABASE_UNAVAILABLE as exc:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("%s: database unavailable (%s); trying again in %.1f s", what, exc, delay)
            _forget_broken_connection()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class _ProgressWriter:
    """ml's progress callback: writes progress/epoch/loss/stage/heartbeat, at most once a second,
    and at once when the stage changes (a probe's stages can be shorter than a second).

    ``.filter().update()`` touches only these columns, so it never overwrites what another
    process (the sweep, an admin) wrote to the row meanwhile. A write the database cannot take
    (it restarts) is skipped, not raised: progress is a report, and the training goes on; the
    finish waits for the database (``with_database_patience``).
    """

    def __init__(self, version_id):
        self.version_id = version_id
        self.last = 0.0
        self.stage = ""

    def __call__(self, info: dict) -> None:
        now = time.monotonic()
        stage = progress_stage(info) or self.stage
        if now - self.last < PROGRESS_MIN_INTERVAL_S and stage == self.stage:
            return
        self.last, self.stage = now, stage
        try:
            ModelVersion.objects.filter(pk=self.version_id, train_status=Status.IN_TRAINING).update(
                progress=min(float(info.get("percent") or 0.0), 99.0),
                epoch=info.get("epoch"),
                loss=finite(info.get("loss")),
                stage=stage,
                heartbeat=timezone.now(),
            )
        except DATABASE_UNAVAILABLE as exc:
            logger.warning("progress of model version %s not written: %s", self.version_id, exc)
            _forget_broken_connection()


class _HeartbeatThread:
    """Refresh the heartbeat every VF_TRAINING_HEARTBEAT_INTERVAL seconds while a fit runs.

    Progress only arrives once per epoch, and decoding a large set or one long epoch can outlast
    the sweep's staleness threshold; without this a live training would look dead and be started
    a second time. Runs on its own database connection (Django's are per thread).
    """

    def __init__(self, version_id):
        self.version_id = version_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"heartbeat-{version_id}", daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.wait(settings.VF_TRAINING_HEARTBEAT_INTERVAL):
                try:
                    ModelVersion.objects.filter(pk=self.version_id, train_status=Status.IN_TRAINING).update(
                        heartbeat=timezone.now()
                    )
                except DATABASE_UNAVAILABLE as exc:  # a restart: one line a beat, not a traceback
                    logger.warning("heartbeat of model version %s not written: %s", self.version_id, exc)
                    close_old_connections()
                except Exception:
                    logger.exception("heartbeat of model version %s failed", self.version_id)
                    close_old_connections()
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)


def model_version_train(*, version: ModelVersion, heartbeat_thread: bool = True) -> ModelVersion:
    """Train a claimed (IN_TRAINING) version end to end and mark it TRAINED.

    The task's kind (apps/core/kinds.py) fits the version into a temporary folder, reporting
    progress; the artifacts are uploaded, then ``model_version_finish``, which waits for a database
    that is restarting rather than throw the trained model away. Raises on failure: the caller
    (the job) fails the version.
    """
    trainer = KINDS.get(version.task.type).trainer
    beat = _HeartbeatThread(version.pk) if heartbeat_thread else contextlib.nullcontext()
    with tempfile.TemporaryDirectory(prefix="vf-train-") as out_dir, beat:
        outcome = trainer.train(version=version, out_dir=out_dir, progress=_ProgressWriter(version.pk))
        artifact_path = artifacts.save_artifacts(version, out_dir)
    finish = partial(
        model_version_finish,
        version_id=version.pk,
        metrics=outcome.metrics,
        warnings=outcome.warnings,
        evaluation=outcome.evaluation,
        artifact_path=artifact_path,
    )
    if connection.in_atomic_block:  # an eager job inside the caller's transaction: no retrying
        return finish()
    return with_database_patience(finish, what=f"finishing model version {version.pk}")


def model_version_finish(
    *, version_id, metrics: dict, warnings: list[str], evaluation: list[dict], artifact_path: str
) -> ModelVersion:
    """In one transaction: mark the version TRAINED with its results and deploy it.

    It becomes the production version when it is the task's first TRAINED version or the task
    does not keep its deployed version. A version another run finished meanwhile is left as is.
    """
    with transaction.atomic():
        _lock_task_of(version_id)
        version = (
            ModelVersion.objects.select_for_update(of=("self",))
            .select_related("task__owner")
            .get(pk=version_id)
        )
        task = Task.objects.select_for_update().get(pk=version.task_id)  # held already: the order
        if version.train_status == Status.TRAINED:
            return version
        version.train_status = Status.TRAINED
        version.finished = version.heartbeat = timezone.now()
        version.progress = 100.0
        version.stage = ""
        version.accuracy = metrics.get("accuracy")
        version.epoch = metrics.get("epochs")
        version.loss = finite(metrics.get("train_loss"))
        version.metrics = metrics
        version.warnings = warnings
        version.evaluation = evaluation
        version.artifact_path = artifact_path
        version.save()
        task.last_train_status = Task.TrainStatus.TRAINED
        if task.production_version < 1 or not task.keep_deployed_version:
            task.production_version = version.version
        task.save(update_fields=["last_train_status", "production_version"])
        version.task = task
        # send_robust: a hook that fails (logged by Django) never undoes or fails the training.
        transaction.on_commit(partial(version_trained.send_robust, sender=ModelVersion, version=version))
        if (metrics.get("serving") or {}).get("int8") == INT8_PENDING:
            transaction.on_commit(partial(_enqueue_int8, version.pk))
    logger.info("model version %s trained: accuracy %s", version.pk, version.accuracy)
    return version


def model_version_release(*, version_id, reason: str, count_attempt: bool = False) -> bool:
    """Hand a version this process is training back to the queue: QUEUED again, enqueued after
    commit. The training did not fail (its worker is stopping, or the database went away under it),
    so the attempt is not counted unless ``count_attempt``: the database's errors are counted, so
    one that keeps coming back cannot requeue a version for ever (VF_TRAINING_MAX_ATTEMPTS ends
    it). False when the version is no longer this process's (finished meanwhile, or taken over by
    another worker), which is then left as it is."""
    with transaction.atomic():
        version = _lock_unfinished_version(version_id)
        if (
            version is None
            or version.train_status != Status.IN_TRAINING
            or version.claimed_by != claims.worker_identity()
        ):
            return False
        version.train_status = Status.QUEUED
        version.heartbeat = timezone.now()  # for a QUEUED version: when it was (re)enqueued
        if not count_attempt:
            version.attempts = max(version.attempts - 1, 0)
        version.claimed_by = ""
        version.started = None
        version.progress = 0.0
        version.epoch = version.loss = None
        version.stage = ""
        version.save(
            update_fields=[
                "train_status",
                "heartbeat",
                "attempts",
                "claimed_by",
                "started",
                "progress",
                "epoch",
                "loss",
                "stage",
            ]
        )
        transaction.on_commit(partial(_enqueue, version.pk))
    logger.warning("model version %s handed back to the queue: %s", version_id, reason)
    return True


# --------------------------------------------------------------------------- sweep


def model_versions_sweep() -> dict[str, list]:
    """Rescue versions left behind: never leave one QUEUED or IN_TRAINING for good.

    IN_TRAINING with a heartbeat older than VF_TRAINING_STALE_AFTER (its worker died): back to
    QUEUED and enqueued again while it has attempts left, else FAILED. QUEUED for longer than
    VF_TRAINING_QUEUED_MAX_AGE: FAILED. QUEUED for longer than VF_TRAINING_STALE_AFTER is enqueued
    again only when its message must be lost: the training queue holds no waiting message (with
    ``acks_late`` and a prefetch of one, a message taken by a worker is claimed at once, so an
    empty queue means nobody will start it). While messages wait, a version that waits too is
    left alone: one version, one message. Returns the ids it requeued and the FAILED versions.
    """
    stale = _stale_before()
    now = timezone.now()
    too_old = now - timedelta(seconds=settings.VF_TRAINING_QUEUED_MAX_AGE)
    requeued, failed = [], []
    waiting: list[int | None] = []

    def queue_holds_messages() -> bool:
        if not waiting:  # asked once per sweep, and only when a QUEUED version needs the answer
            waiting.append(waiting_messages(TRAINING_QUEUE))
        return waiting[0] != 0  # None: the broker cannot tell, so do not risk a second message

    candidates = ModelVersion.objects.filter(
        train_status__in=(Status.QUEUED, Status.IN_TRAINING), heartbeat__lt=stale
    )
    for version_id in list(candidates.values_list("pk", flat=True)):
        with transaction.atomic():
            if not _lock_task_of(version_id):
                continue
            version = (
                ModelVersion.objects.select_for_update(of=("self",))
                .select_related("task__owner")
                .filter(
                    pk=version_id, heartbeat__lt=stale, train_status__in=(Status.QUEUED, Status.IN_TRAINING)
                )
                .first()
            )
            if version is None:  # it moved on meanwhile
                continue
            if (
                version.train_status == Status.IN_TRAINING
                and version.attempts >= settings.VF_TRAINING_MAX_ATTEMPTS
            ):
                failed.append(_fail_locked(version, MSG_WORKER_LOST.format(attempts=version.attempts)))
            elif version.train_status == Status.QUEUED and version.created < too_old:
                hours = settings.VF_TRAINING_QUEUED_MAX_AGE / 3600
                failed.append(_fail_locked(version, MSG_NEVER_STARTED.format(hours=hours)))
            elif version.train_status == Status.QUEUED and queue_holds_messages():
                continue  # its message is most likely among those waiting
            else:
                if version.train_status == Status.IN_TRAINING:
                    logger.warning("model version %s lost its worker; requeueing", version.pk)
                version.train_status = Status.QUEUED
                version.heartbeat = now
                version.save(update_fields=["train_status", "heartbeat"])
                transaction.on_commit(partial(_enqueue, version.pk))
                requeued.append(version.pk)
    return {"requeued": requeued, "failed": failed}


# --------------------------------------------------------------------------- served precision


def _enqueue_int8(version_id) -> None:
    try:
        job_enqueue(INT8_JOB, str(version_id))
    except Exception:
        # Broker down: the version keeps serving its FP32 file, which is a correct answer.
        logger.exception("could not enqueue the INT8 attempt of model version %s", version_id)


def _serving_update(version_id, changes: dict, *, served_file: str | None = None, states=None):
    """Merge ``changes`` into a TRAINED version's serving record (and set ``served_file``) under
    its row lock; None (nothing written) when the version is gone or its INT8 state is not one of
    ``states``."""
    with transaction.atomic():
        version = (
            ModelVersion.objects.select_for_update()
            .filter(pk=version_id, train_status=Status.TRAINED)
            .first()
        )
        if version is None:
            return None
        record = dict((version.metrics or {}).get("serving") or {})
        if states is not None and record.get("int8") not in states:
            return None
        record.update(changes)
        version.metrics = {**version.metrics, "serving": {k: v for k, v in record.items() if v is not None}}
        fields = ["metrics"]
        if served_file is not None:
            version.served_file = served_file
            fields.append("served_file")
        version.save(update_fields=fields)
        return version


def model_version_serve_int8(*, version_id) -> ModelVersion | None:
    """The INT8 attempt of a TRAINED version, after its training: quantise its served FP32 file,
    calibrated on its training side, and switch the version to the INT8 file when, on its test
    side, INT8 keeps FP32's answers within the version's limits (ml/recognition/serving.py).

    The version is served in FP32 until then, and stays so when INT8 is refused; either way its
    serving record (``metrics["serving"]``) gets the agreement figures and the state. The switch is
    one row update (``served_file``): every process's model cache is keyed by it, and the
    download hands out the same file. Safe to run twice: a finished attempt is left as it is, and
    the INT8 file is named by its digest. Raises on failure (the job records it: FP32 stays).
    """
    from ml.recognition.serving import try_int8

    version = _serving_update(version_id, {"int8": INT8_RUNNING}, states=(INT8_PENDING, INT8_RUNNING))
    if version is None:
        return None
    source = artifacts.local_artifact_dir(version)
    train_files, test_files = model_version_split_files(version=version)
    with tempfile.TemporaryDirectory(prefix="vf-int8-") as work:
        # A private copy: the quantiser writes beside the files, and the cache folder is shared.
        directory = f"{work}/version"
        shutil.copytree(source, directory)
        spool = f"{work}/spool"
        os.makedirs(spool)
        sources = image_sources(train_files + test_files, spool)
        record = try_int8(
            directory,
            training_images=[s for s in sources[: len(train_files)] if s],
            test_images=[s for s in sources[len(train_files) :] if s],
            num_threads=settings.VF_TRAIN_THREADS or None,
        )
        name = record.get("file") if record.get("precision") == "int8" else None
        if name:
            artifacts.save_served_file(version, f"{directory}/{name}", name)
    updated = _serving_update(version_id, record, served_file=name, states=(INT8_RUNNING,))
    if updated is None and name and not ModelVersion.objects.filter(pk=version_id, served_file=name).exists():
        artifacts.delete_stored_file(version, name)  # the version went away meanwhile
    if updated is not None:
        _serving_settled(updated)
    logger.info("model version %s: INT8 %s (%s)", version_id, record.get("int8"), record.get("agreement"))
    return updated


def model_versions_int8_sweep() -> list:
    """Queue again the INT8 attempts whose message must be lost (the broker was down when the
    version became TRAINED, or lost its data): still pending or running longer after TRAINED than a
    job may run (``VF_TASK_TIME_LIMIT``, plus a minute). Their versions serve FP32 meanwhile; a
    second message for a live attempt costs a second run, never a wrong file (digest names).
    Returns the version ids queued."""
    overdue = timezone.now() - timedelta(seconds=settings.VF_TASK_TIME_LIMIT + 60)
    ids = list(
        ModelVersion.objects.filter(
            train_status=Status.TRAINED,
            finished__lt=overdue,
            metrics__serving__int8__in=(INT8_PENDING, INT8_RUNNING),
        ).values_list("pk", flat=True)
    )
    for version_id in ids:
        _enqueue_int8(version_id)
    return ids


def model_version_int8_fail(*, version_id, reason: str) -> ModelVersion | None:
    """Record that the INT8 attempt failed; the version keeps serving its FP32 file."""
    updated = _serving_update(
        version_id, {"int8": INT8_FAILED, "reason": reason[:500]}, states=(INT8_PENDING, INT8_RUNNING)
    )
    if updated is not None:
        _serving_settled(updated)
    return updated


def _serving_settled(version: ModelVersion) -> None:
    """Tell the apps above that the version's INT8 attempt ended (``version_serving_settled``),
    after commit; a failing receiver is logged, never raised into the job."""
    version.task = Task.objects.get(pk=version.task_id)
    transaction.on_commit(partial(version_serving_settled.send_robust, sender=ModelVersion, version=version))
