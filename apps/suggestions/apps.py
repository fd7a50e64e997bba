from django.apps import AppConfig


class SuggestionsConfig(AppConfig):
    """The labelling loop: a task's pool of unlabelled images, active-learning suggestions scored
    by the deployed version after each training, and the model's guess offered as a pre-label."""

    name = "apps.suggestions"
    label = "suggestions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the scoring job with Celery (enqueued by name), and the receiver that scores
        # the pool when a training finishes.
        from . import jobs, signals  # noqa: F401
