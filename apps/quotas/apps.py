from django.apps import AppConfig


class QuotasConfig(AppConfig):
    """Quotas per workspace: images, stored bytes, model versions kept, trainings queued at once.

    Limits only: the services that write (image ingest, task_train) ask here before they store,
    with the use they measured under their own locks (apps/images, apps/training). This app imports
    neither, so both can call it.
    """

    name = "apps.quotas"
    label = "quotas"
    default_auto_field = "django.db.models.BigAutoField"
