"""Names of apps/training's Celery jobs on the wire, and the queue a training runs on.

Plain constants, importable before Django is set up: config/celery.py routes and schedules by
them while it configures the Celery app, and the services enqueue by name (apps/core/broker.py).
The jobs were defined in apps/tasks before this app existed; their names stay, so messages
already in a broker still run.
"""

TRAIN_JOB = "apps.tasks.jobs.train_model_version"
SWEEP_JOB = "apps.tasks.jobs.sweep_stuck_trainings"
TRAINING_QUEUE = "training"  # GPU machines take it; every other job goes to "default"
