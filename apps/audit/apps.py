from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Who did what to whom: membership, tokens, deletions, sign-in lockouts (apps/audit)."""

    name = "apps.audit"
    label = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the receivers
