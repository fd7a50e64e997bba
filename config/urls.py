"""One URLconf: the account API, the recognition API under both prefixes, docs, admin, health, console."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core.views import favicon, health, index
from apps.images.urls import media_urlpatterns
from apps.inference.urls import detection_urlpatterns, v1_urlpatterns
from apps.suggestions.urls import detection_urlpatterns as suggestion_detection_urlpatterns

# The recognition API (tasks, labels, images, models, classify) answers under both the Ximilar
# prefix and the Vize prefix. Apps add their routes to config/api_urls.py.
urlpatterns = [
    # The front door: a browser goes to the console, an API client gets the API's roots.
    path("", index, name="index"),
    path("favicon.ico", favicon, name="favicon"),
    re_path(r"^health/?$", health, name="health"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("account/v2/", include("apps.workspaces.urls")),
    path("account/v2/", include("apps.audit.urls")),  # workspace/{id}/audit-log/
    path("account/v2/", include("apps.tokens.urls")),  # workspace/{id}/tokens/
    path("recognition/v2/", include("config.api_urls")),
    path("v2/", include(("config.api_urls", "v2"), namespace="v2")),
    # Custom object detection (Ximilar's detection/v2/): tasks, labels, objects.
    path("detection/v2/", include("apps.detection.urls")),
    path("detection/v2/", include(detection_urlpatterns)),  # detect/ (apps/inference)
    # task/{id}/suggestions/, pool/, prelabel/ of detection tasks (apps/suggestions).
    path("detection/v2/", include(suggestion_detection_urlpatterns)),
    # ... and detect/ on the short prefix too, as recognition answers on both.
    path("v2/", include((detection_urlpatterns, "v2-detect"), namespace="v2-detect")),
    # Vize v1 classify and the signed media URLs.
    path("v1/", include(v1_urlpatterns)),
    path("media/", include(media_urlpatterns)),
    # The web console: server-rendered pages over the same services (apps/console).
    path("console/", include("apps.console.urls")),
]

handler400 = "apps.core.views.bad_request"
handler404 = "apps.core.views.not_found"
handler500 = "apps.core.views.server_error"
