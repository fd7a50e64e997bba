"""The Celery app: reliability settings and the two queues.

Jobs live in each app's ``jobs.py`` and are autodiscovered. Training runs on its own ``training``
queue (GPU machines take it); everything else goes to ``default``.
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)

app = Celery("visionforge")

# Names of the training jobs (apps/training/jobs.py) on the wire. They were defined in apps/tasks
# before the training app existed; the names stay, so messages already in a broker still run.
TRAIN_JOB = "apps.tasks.jobs.train_model_version"
SWEEP_JOB = "apps.tasks.jobs.sweep_stuck_trainings"


def _configure(app: Celery) -> None:
    from django.conf import settings

    broker_options: dict = {}
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        # The filesystem transport moves messages between folders; web and worker share them.
        folder = settings.CELERY_FILESYSTEM_DIR
        for sub in ("out", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        broker_options = {
            "data_folder_in": str(folder / "out"),
            "data_folder_out": str(folder / "out"),
            "processed_folder": str(folder / "processed"),
            # Broadcast (remote control) state; kombu's default is ./control in the working directory.
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    else:
        # A message not acknowledged within this time is redelivered by Redis. It must be longer
        # than the hard time limit of the longest job, or a long training would run twice.
        broker_options = {"visibility_timeout": settings.VF_TRAINING_TIME_LIMIT + 3600}

    app.conf.update(
        broker_url=settings.CELERY_BROKER_URL,
        broker_transport_options=broker_options,
        broker_connection_retry_on_startup=True,
        task_always_eager=settings.CELERY_TASK_ALWAYS_EAGER,
        task_eager_propagates=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # Reliability: acknowledge after the job ran, requeue when the worker dies mid-job, and take
        # one message at a time so a long training does not hold others hostage.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.VF_TASK_TIME_LIMIT,
        task_soft_time_limit=max(settings.VF_TASK_TIME_LIMIT - 30, 1),
        task_default_queue="default",
        task_queues=(Queue("default"), Queue("training")),
        task_routes={TRAIN_JOB: {"queue": "training"}},
        beat_schedule={
            "sweep-stuck-trainings": {
                "task": SWEEP_JOB,
                "schedule": float(settings.VF_TRAINING_SWEEP_INTERVAL),
            },
        },
        worker_hijack_root_logger=False,
    )


# Configure lazily, when the app's config is first read, so importing this module does not load
# Django settings (config/__init__ imports it while the settings module itself is being imported).
app.on_configure.connect(lambda sender, **_: _configure(sender), weak=False)
app.autodiscover_tasks(related_name="jobs")


def broker_reachable(timeout: float = 2.0) -> bool:
    """True when jobs can be sent: eager mode, or the broker answers within ``timeout`` seconds."""
    return app.conf.task_always_eager or broker_answers(timeout)


def waiting_messages(queue: str = "training", timeout: float = 2.0) -> int | None:
    """How many messages wait in ``queue`` (sent, not yet taken by a worker); None when the broker
    cannot be asked. Works for the brokers we document (filesystem, Redis, RabbitMQ)."""
    from kombu.exceptions import ChannelError

    if app.conf.task_always_eager:
        return 0
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            with conn.channel() as channel:
                try:
                    return int(channel.queue_declare(queue=queue, passive=True).message_count)
                except ChannelError:
                    return 0  # the queue does not exist (Redis drops an empty one): nothing waits
    except Exception:  # noqa: BLE001 - any failure means "cannot tell"
        logger.warning("could not count the messages waiting in %s", queue, exc_info=True)
        return None


_POOLS: dict = {}


def _broker_pool():
    """A small pool of connections per broker URL (the URL is fixed in a server; tests change it).

    The URL comes from ``connection_for_write`` (no I/O), which reads the configuration the way
    Celery expects on first use."""
    connection = app.connection_for_write()
    url = connection.as_uri(include_password=True)
    if url not in _POOLS:
        _POOLS[url] = connection.Pool(limit=2)
    return _POOLS[url]


def broker_answers(timeout: float = 2.0) -> bool:
    """True when the broker answers within ``timeout`` seconds.

    Through the app's connection pool, so a health check every second does not open (and tear
    down) a broker connection each time; on Redis a ``PING`` proves the pooled connection is
    still answered, not merely open."""
    try:
        with _broker_pool().acquire(block=True, timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            client = getattr(conn.default_channel, "client", None)
            if callable(getattr(client, "ping", None)):
                client.ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "unreachable"
        return False
