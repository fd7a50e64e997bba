from django.apps import AppConfig


class SimilarityConfig(AppConfig):
    """Similarity search: a descriptor per image of the workspace from a task's trained version,
    computed in the background after training, "images like this one" over a faiss index, and
    near-duplicates of an upload reported in its answer."""

    name = "apps.similarity"
    label = "similarity"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The descriptor job (enqueued by name), the receiver that starts it after a training, and
        # the check that adds near-duplicate warnings to an upload's answer.
        from . import jobs, signals  # noqa: F401
