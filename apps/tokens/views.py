"""``/account/v2/workspace/{id}/tokens/``: the workspace's scoped API tokens, for its owner.

- ``GET``/``POST tokens/``: list them; issue one (the key is in this answer only);
- ``GET``/``DELETE tokens/{token_id}/``: one token; revoke it (refused at once, everywhere).

Account-level, so not a WorkspaceScopedViewSet: the workspace is the path's, and no scoped token
may call these (apps/tokens/scopes.py).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from apps.core.errors import NotFoundError
from apps.workspaces.selectors import workspace_get_for_user

from . import selectors, services
from .models import ScopedToken
from .serializers import ScopedTokenCreatedSerializer, ScopedTokenInputSerializer, ScopedTokenSerializer

MSG_WORKSPACE_NOT_FOUND = "Workspace not found."
MSG_NOT_FOUND = "Token not found."

ERRORS = {
    401: OpenApiResponse(description="No, invalid, expired or revoked token"),
    403: OpenApiResponse(description="Not the workspace's owner, or a scoped token (account-level route)"),
    404: OpenApiResponse(description="No such token in the workspace, or not a member of the workspace"),
}
TOKEN_PATH = OpenApiParameter("token_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Token id")


@extend_schema(tags=["account"])
class ScopedTokenViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Named tokens limited to one workspace and a scope (read-only, classify-only, full), with an
    optional expiry; stored hashed, the key shown once; revoking one refuses it at once."""

    serializer_class = ScopedTokenSerializer

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if getattr(self, request.method.lower(), None) is None:
            return  # a method the view does not serve: dispatch() answers 405
        workspace = workspace_get_for_user(user=request.user, workspace_id=self.kwargs.get("pk"))
        if workspace is None:
            raise NotFoundError(MSG_WORKSPACE_NOT_FOUND)
        services.scoped_token_owner_check(workspace=workspace, user=request.user)
        self.workspace = workspace

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return ScopedToken.objects.none()
        return selectors.scoped_token_list(workspace=self.workspace)

    def _token(self):
        token = selectors.scoped_token_get(workspace=self.workspace, token_id=self.kwargs.get("token_id"))
        if token is None:
            raise NotFoundError(MSG_NOT_FOUND)
        return token

    @extend_schema(
        summary="List the workspace's API tokens", responses={200: ScopedTokenSerializer(many=True), **ERRORS}
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Issue a scoped API token",
        description="The answer holds the token's `key`; it is shown this once (only its hash is kept).",
        request=ScopedTokenInputSerializer,
        responses={
            201: ScopedTokenCreatedSerializer,
            400: OpenApiResponse(
                description='Refused, with `{"detail": "..."}` or `{field: [messages]}` saying why (a blank '
                "name, an unknown scope, an expiry in the past)"
            ),
            409: OpenApiResponse(description="The workspace has as many tokens as it may; revoke one first"),
            **ERRORS,
        },
    )
    def create(self, request, *args, **kwargs):
        data = ScopedTokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, key = services.scoped_token_create(
            workspace=self.workspace, actor=request.user, **data.validated_data
        )
        answer = ScopedTokenCreatedSerializer(token).data
        answer["key"] = key
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Get an API token", parameters=[TOKEN_PATH], responses={200: ScopedTokenSerializer, **ERRORS}
    )
    def retrieve(self, request, *args, **kwargs):
        return Response(ScopedTokenSerializer(self._token()).data)

    @extend_schema(
        summary="Revoke an API token",
        description="The token is deleted: its key is refused (401) from the next request on.",
        parameters=[TOKEN_PATH],
        responses={204: None, **ERRORS},
    )
    def destroy(self, request, *args, **kwargs):
        services.scoped_token_revoke(token=self._token(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
