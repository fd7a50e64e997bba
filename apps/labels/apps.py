from django.apps import AppConfig


class LabelsConfig(AppConfig):
    name = "apps.labels"
    label = "labels"
    default_auto_field = "django.db.models.BigAutoField"
