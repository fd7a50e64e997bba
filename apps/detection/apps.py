from django.apps import AppConfig


class DetectionConfig(AppConfig):
    """Custom object detection: detection tasks, labels and objects (boxes on training images).

    A detection task is a ``tasks.Task`` of type ``detection``, so it shares the training lifecycle
    (apps/training) and the model cache (apps/inference); this app plugs its trainer in here.
    """

    name = "apps.detection"
    label = "detection"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The detection trainer plugs into the shared lifecycle (apps/training/kinds.py).
        from apps.tasks.models import Task
        from apps.training.kinds import KINDS

        from . import training

        KINDS.register([Task.Type.DETECTION], training.KIND)
