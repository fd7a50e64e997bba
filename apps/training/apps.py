from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """Model versions and their lifecycle: split, queue, claim, heartbeat, sweep, deploy, e-mails."""

    name = "apps.training"
    label = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The image-classification trainer plugs into the lifecycle (apps/training/kinds.py).
        from apps.tasks.models import RECOGNITION_TYPES

        # signals: files go with their rows; jobs: registered, so the services enqueue them by name.
        from . import classification, jobs, kinds, signals  # noqa: F401

        kinds.KINDS.register(RECOGNITION_TYPES, classification.KIND)
