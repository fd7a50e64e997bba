"""``GET /account/v2/workspace/{id}/audit-log/``: the workspace's audit log, for its owner."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets

from apps.core.errors import NotFoundError
from apps.workspaces.selectors import workspace_get_for_user

from . import selectors
from .models import AuditEvent
from .serializers import AuditEventSerializer

MSG_WORKSPACE_NOT_FOUND = "Workspace not found."


@extend_schema(
    tags=["account"],
    responses={
        200: AuditEventSerializer(many=True),
        401: OpenApiResponse(description="No or invalid token"),
        403: OpenApiResponse(description="Not the workspace's owner"),
        404: OpenApiResponse(description="Not found, or not a member of the workspace"),
    },
)
class AuditLogViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Who did what in the workspace, newest first: members added and removed, tasks, labels and
    versions deleted. Paged like the other lists. Only the owner reads it; the admin reads every
    workspace's (and the events of no workspace: tokens, sign-in lockouts, deleted workspaces)."""

    serializer_class = AuditEventSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return AuditEvent.objects.none()
        workspace = workspace_get_for_user(user=self.request.user, workspace_id=self.kwargs["pk"])
        if workspace is None:
            raise NotFoundError(MSG_WORKSPACE_NOT_FOUND)
        return selectors.audit_event_list(workspace=workspace, user=self.request.user)
