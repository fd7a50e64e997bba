"""The Celery app: reliability settings and the two queues.

Jobs live in each app's ``jobs.py`` and are autodiscovered. Training runs on its own ``training``
queue (GPU machines take it); everything else goes to ``default``. The apps reach the broker
through Celery's current app (apps/core/broker.py), never through this module.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("visionforge")


def _configure(app: Celery) -> None:
    from django.conf import settings

    from apps.training.job_names import SWEEP_JOB, TRAIN_JOB, TRAINING_QUEUE
    from apps.webhooks.job_names import SWEEP_DELIVERIES_JOB

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
        task_queues=(Queue("default"), Queue(TRAINING_QUEUE)),
        task_routes={TRAIN_JOB: {"queue": TRAINING_QUEUE}},
        beat_schedule={
            "sweep-stuck-trainings": {
                "task": SWEEP_JOB,
                "schedule": float(settings.VF_TRAINING_SWEEP_INTERVAL),
            },
            "sweep-stranded-webhook-deliveries": {
                "task": SWEEP_DELIVERIES_JOB,
                "schedule": float(settings.VF_TRAINING_SWEEP_INTERVAL),
            },
        },
        worker_hijack_root_logger=False,
    )


# Configure lazily, when the app's config is first read, so importing this module does not load
# Django settings (config/__init__ imports it while the settings module itself is being imported).
app.on_configure.connect(lambda sender, **_: _configure(sender), weak=False)
app.autodiscover_tasks(related_name="jobs")
