from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Plumbing every app uses: errors and the exception handler, the router, parsers, pagination,
    schema hooks, id parsing, shared fields and the health check; one table, the blocks of long lists
    (models.py, positions.py)."""

    name = "apps.core"
    label = "core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import strict

        strict.install()  # JSON bodies keep the schema's types (apps/core/strict.py)
