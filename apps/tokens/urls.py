"""``workspace/{id}/tokens/`` of the account API (mounted under /account/v2/ by config/urls.py)."""

from django.urls import re_path

from .views import ScopedTokenViewSet

WORKSPACE = r"^workspace/(?P<pk>[0-9a-fA-F-]{36})/tokens/"

urlpatterns = [
    re_path(
        WORKSPACE + "?$",
        ScopedTokenViewSet.as_view({"get": "list", "post": "create"}),
        name="workspace-tokens",
    ),
    re_path(
        WORKSPACE + r"(?P<token_id>[0-9a-fA-F-]{36})/?$",
        ScopedTokenViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
        name="workspace-token-detail",
    ),
]
