"""Name of apps/similarity's Celery job on the wire (the services enqueue by name)."""

DESCRIBE_JOB = "apps.similarity.jobs.describe_images"
