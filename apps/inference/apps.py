from django.apps import AppConfig


class InferenceConfig(AppConfig):
    """Classify endpoints and the per-process model cache. No models."""

    name = "apps.inference"
    label = "inference"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Image classification plugs its predictor and answer shape into the cache and classify.
        from apps.tasks.models import RECOGNITION_TYPES

        from . import classification, kinds

        kinds.KINDS.register(RECOGNITION_TYPES, classification.KIND)
