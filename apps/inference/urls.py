"""``classify/`` under /recognition/v2/ and /v2/, and Vize's deprecated ``/v1/classify/``.

config/api_urls.py mounts ``urlpatterns``; config/urls.py mounts ``v1_urlpatterns`` under /v1/.
Trailing slash optional.
"""

from apps.core.routers import OptionalSlashRouter

from .views import ClassifyViewSet, DetectViewSet, V1ClassifyViewSet

router = OptionalSlashRouter()
router.register("classify", ClassifyViewSet, basename="classify")
urlpatterns = [*router.urls]

# detect/ under /detection/v2/ (config/urls.py), beside apps/detection's task/, label/, object/.
detection_router = OptionalSlashRouter()
detection_router.register("detect", DetectViewSet, basename="detect")
detection_urlpatterns = [*detection_router.urls]

v1_router = OptionalSlashRouter()
v1_router.register("classify", V1ClassifyViewSet, basename="v1-classify")
v1_urlpatterns = [*v1_router.urls]
