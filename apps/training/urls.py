"""``model/``: mounted under both API prefixes by config/api_urls.py."""

from apps.core.routers import OptionalSlashRouter

from .views import ModelVersionViewSet

router = OptionalSlashRouter()
router.register("model", ModelVersionViewSet, basename="model")

urlpatterns = [*router.urls]
