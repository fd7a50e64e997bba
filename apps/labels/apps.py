from django.apps import AppConfig


class LabelsConfig(AppConfig):
    name = "apps.labels"
    label = "labels"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the wipe job with Celery, so the services can enqueue it by name.
        from . import jobs  # noqa: F401
