from django.apps import AppConfig


class DetectionConfig(AppConfig):
    """Custom object detection: detection tasks, labels and objects (boxes on training images).

    A detection task is a ``tasks.Task`` of type ``detection``, so it shares the training lifecycle
    (apps/training) and prediction (apps/inference); this app plugs its trainer and its predictor in.
    """

    name = "apps.detection"
    label = "detection"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The detection task type plugs its trainer and predictor in together (apps/core/kinds.py).
        from apps.core.kinds import KINDS, TaskKind
        from apps.tasks.models import Task

        from . import prediction, training

        KINDS.register(
            [Task.Type.DETECTION], TaskKind(trainer=training.TRAINER, predictor=prediction.PREDICTOR)
        )
