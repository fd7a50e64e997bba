"""Names of apps/labels' Celery jobs on the wire: the services enqueue by name (apps/core/broker.py)."""

WIPE_JOB = "apps.labels.jobs.wipe_label"
