from django.apps import AppConfig


class TokensConfig(AppConfig):
    """Scoped API tokens: named keys a workspace's owner issues for one workspace, with a scope
    (read-only, classify-only, full) and an optional expiry, stored hashed, revocable."""

    name = "apps.tokens"
    label = "tokens"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # drf-spectacular finds the scoped token's security scheme by this import.
        from . import schema  # noqa: F401
