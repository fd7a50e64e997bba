from django.apps import AppConfig


class InferenceConfig(AppConfig):
    """Classify endpoints and the per-process model cache. No models."""

    name = "apps.inference"
    label = "inference"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Image classification and object detection plug their predictors and answer shapes into
        # the model cache and the one classify/detect service.
        from apps.tasks.models import RECOGNITION_TYPES, Task

        from . import classification, detection, kinds

        kinds.KINDS.register(RECOGNITION_TYPES, classification.KIND)
        kinds.KINDS.register([Task.Type.DETECTION], detection.KIND)
