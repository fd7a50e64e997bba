"""Routes of the detection API, mounted under /detection/v2/ by config/urls.py (slash optional)."""

from apps.core.routers import OptionalSlashRouter

from .views import DetectionLabelViewSet, DetectionObjectViewSet, DetectionTaskViewSet

router = OptionalSlashRouter()
router.register("task", DetectionTaskViewSet, basename="detection-task")
router.register("label", DetectionLabelViewSet, basename="detection-label")
router.register("object", DetectionObjectViewSet, basename="detection-object")

urlpatterns = [*router.urls]
