"""Name of apps/webhooks' Celery job on the wire (the services enqueue by name, apps/core/broker.py)."""

DELIVER_JOB = "apps.webhooks.jobs.deliver_webhook"
SWEEP_DELIVERIES_JOB = "apps.webhooks.jobs.sweep_stranded_deliveries"
