"""Names of apps/training's Celery jobs on the wire, and the queue a training runs on.

Plain constants, importable before Django is set up: config/celery.py routes and schedules by
them while it configures the Celery app, and the services enqueue by name (apps/core/broker.py).
The jobs were defined in apps/tasks before this app existed; their names stay, so messages
already in a broker still run.
"""

TRAIN_JOB = "apps.tasks.jobs.train_model_version"
SWEEP_JOB = "apps.tasks.jobs.sweep_stuck_trainings"
# The INT8 attempt after a version is TRAINED (apps/training/services.py model_version_serve_int8);
# on the default queue: it is short next to a training and must not wait behind a queue of them.
INT8_JOB = "apps.training.jobs.serve_int8"
TRAINING_QUEUE = "training"  # GPU machines take it; every other job goes to "default"
