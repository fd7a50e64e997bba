from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from . import views


class OptionalSlashRouter(SimpleRouter):
    """Routes that answer with and without the trailing slash (the Ximilar client uses both)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("workspace", views.WorkspaceViewSet, basename="workspace")

urlpatterns = [
    re_path(r"^user/?$", views.UserDetailView.as_view(), name="user-detail"),
    re_path(r"^details/?$", views.UserDetailView.as_view(), name="user-details-alias"),
    re_path(r"^token/?$", views.TokenView.as_view(), name="token"),
    *router.urls,
]

__all__ = ["urlpatterns", "OptionalSlashRouter", "path"]
