from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Webhooks: a workspace's events (training started, finished, failed; suggestions ready)
    posted to its owner's URLs, signed, retried by the worker, each attempt logged."""

    name = "apps.webhooks"
    label = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the delivery job with Celery (enqueued by name), and connects the receivers
        # of training's and suggestions' signals.
        from . import jobs, receivers  # noqa: F401
