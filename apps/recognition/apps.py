from django.apps import AppConfig


class RecognitionConfig(AppConfig):
    """Image recognition (multi_class, multi_label, regression) as a kind of task: its trainer and its
    predictor. No models and no endpoints: recognition tasks, labels and images are apps/tasks,
    apps/labels and apps/images; training and classify are the shared apps/training and
    apps/inference."""

    name = "apps.recognition"
    label = "recognition"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The recognition task types plug their trainer and predictor in together (apps/core/kinds.py).
        from apps.core.kinds import KINDS, TaskKind
        from apps.tasks.models import RECOGNITION_TYPES

        from . import prediction, training

        KINDS.register(RECOGNITION_TYPES, TaskKind(trainer=training.TRAINER, predictor=prediction.PREDICTOR))
