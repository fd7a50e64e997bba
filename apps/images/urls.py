"""``training-image/`` (config/api_urls.py mounts ``urlpatterns`` under both API prefixes) and
``/media/<storage name>?sig=...``, files behind signed, expiring links (see storage.py;
config/urls.py mounts ``media_urlpatterns`` under /media/)."""

from django.urls import re_path

from apps.core.routers import OptionalSlashRouter

from .views import MediaFileView, TrainingImageViewSet

router = OptionalSlashRouter()
router.register("training-image", TrainingImageViewSet, basename="training-image")

urlpatterns = [*router.urls]

media_urlpatterns = [re_path(r"^(?P<name>.+)$", MediaFileView.as_view(), name="media-file")]
