"""``webhook/`` of the recognition API (mounted by config/api_urls.py under both prefixes)."""

from apps.core.routers import OptionalSlashRouter

from .views import WebhookViewSet

router = OptionalSlashRouter()
router.register("webhook", WebhookViewSet, basename="webhook")

urlpatterns = [*router.urls]
