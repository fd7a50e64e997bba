"""Name of apps/suggestions' Celery job on the wire (the services enqueue by name)."""

SCORE_JOB = "apps.suggestions.jobs.score_pool"
