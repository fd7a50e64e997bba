from django.urls import re_path

from apps.core.routers import OptionalSlashRouter

from . import views

router = OptionalSlashRouter()
router.register("workspace", views.WorkspaceViewSet, basename="workspace")

urlpatterns = [
    re_path(r"^user/?$", views.UserDetailView.as_view(), name="user-detail"),
    re_path(r"^details/?$", views.UserDetailView.as_view(), name="user-details-alias"),
    re_path(r"^token/?$", views.TokenView.as_view(), name="token"),
    *router.urls,
]
