from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """Model versions and their lifecycle: split, queue, claim, heartbeat, sweep, deploy, e-mails."""

    name = "apps.training"
    label = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The image-classification trainer plugs into the lifecycle (apps/training/kinds.py).
        from apps.tasks.models import RECOGNITION_TYPES

        from . import classification, kinds, signals  # noqa: F401 - signals: files go with their rows

        kinds.KINDS.register(RECOGNITION_TYPES, classification.KIND)
