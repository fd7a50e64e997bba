"""Name of apps/webhooks' Celery job on the wire (the services enqueue by name, apps/core/broker.py)."""

DELIVER_JOB = "apps.webhooks.jobs.deliver_webhook"
