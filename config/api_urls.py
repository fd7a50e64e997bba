"""Routes of the recognition API, mounted under /recognition/v2/ and /v2/ by config/urls.py."""

from django.urls import include, path

urlpatterns = [
    path("", include("apps.tasks.training_urls")),  # task/{id}/train/, model/
    path("", include("apps.tasks.classify_urls")),  # classify/
    path("", include("apps.tasks.urls")),  # task/
    path("", include("apps.labels.urls")),  # label/
    path("", include("apps.images.urls")),  # training-image/
]
