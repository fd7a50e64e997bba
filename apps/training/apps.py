from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """Model versions and their lifecycle: split, queue, claim, heartbeat, sweep, deploy, e-mails."""

    name = "apps.training"
    label = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # signals: files go with their rows; jobs: registered, so the services enqueue them by name.
        from . import jobs, signals  # noqa: F401
