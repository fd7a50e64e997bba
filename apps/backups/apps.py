from django.apps import AppConfig


class BackupsConfig(AppConfig):
    """Backups, restores and the storage check: the whole install's rows and files as one archive."""

    name = "apps.backups"
    label = "backups"
    default_auto_field = "django.db.models.BigAutoField"
