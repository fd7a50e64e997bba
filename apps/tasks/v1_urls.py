"""Vize's deprecated ``/v1/classify/`` (trailing slash optional)."""

from apps.workspaces.routers import OptionalSlashRouter

from .classify_views import V1ClassifyViewSet

router = OptionalSlashRouter()
router.register("classify", V1ClassifyViewSet, basename="v1-classify")

urlpatterns = [*router.urls]
