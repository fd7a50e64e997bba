"""Routes of the recognition API, mounted under /recognition/v2/ and /v2/ by config/urls.py."""

from django.urls import include, path

urlpatterns = [
    path("", include("apps.tasks.urls")),
    path("", include("apps.labels.urls")),
    path("", include("apps.images.urls")),
]
