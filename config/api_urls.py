"""Routes of the recognition API, mounted under /recognition/v2/ and /v2/ by config/urls.py.

One app per prefix: the code of a URL is in ``apps/<app>/views.py`` of the app named here.
"""

from django.urls import include, path

urlpatterns = [
    path("", include("apps.tasks.urls")),  # task/ (with its add-label and remove-label actions)
    path("", include("apps.training.urls")),  # model/, and task/{id}/train/
    path("", include("apps.inference.urls")),  # classify/
    path("", include("apps.labels.urls")),  # label/
    path("", include("apps.images.urls")),  # training-image/
    path("", include("apps.suggestions.urls")),  # task/{id}/suggestions/, pool/, prelabel/
    path("", include("apps.similarity.urls")),  # task/{id}/similar/, similar/status/, similar/refresh/
    path("", include("apps.webhooks.urls")),  # webhook/ (with its test and deliveries actions)
]
