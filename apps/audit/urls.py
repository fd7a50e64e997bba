from django.urls import re_path

from .views import AuditLogViewSet

urlpatterns = [
    re_path(
        r"^workspace/(?P<pk>[0-9a-fA-F-]{36})/audit-log/?$",
        AuditLogViewSet.as_view({"get": "list"}),
        name="workspace-audit-log",
    ),
]
