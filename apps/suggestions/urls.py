"""``task/{id}/suggestions/``, ``pool/`` and ``prelabel/`` on both APIs' tasks: the recognition
routes mounted by config/api_urls.py, the detection ones (``detection_urlpatterns``) by
config/urls.py under detection/v2/."""

from apps.core.routers import OptionalSlashRouter

from .views import DetectionSuggestionsViewSet, RecognitionSuggestionsViewSet

router = OptionalSlashRouter()
# The task's basename, as apps/training registers its train action beside apps/tasks' routes.
router.register("task", RecognitionSuggestionsViewSet, basename="task")
urlpatterns = [*router.urls]

detection_router = OptionalSlashRouter()
detection_router.register("task", DetectionSuggestionsViewSet, basename="detection-task")
detection_urlpatterns = [*detection_router.urls]
