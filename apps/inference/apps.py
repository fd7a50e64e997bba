from django.apps import AppConfig


class InferenceConfig(AppConfig):
    """The classify and detect endpoints and the per-process model cache, the same for every kind of
    task (each kind plugs in its predictor: apps/core/kinds.py). No models."""

    name = "apps.inference"
    label = "inference"
    default_auto_field = "django.db.models.BigAutoField"
