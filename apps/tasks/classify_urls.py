"""``classify/`` under /recognition/v2/ and /v2/ (trailing slash optional)."""

from apps.workspaces.routers import OptionalSlashRouter

from .classify_views import ClassifyViewSet

router = OptionalSlashRouter()
router.register("classify", ClassifyViewSet, basename="classify")

urlpatterns = [*router.urls]
