from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.throttling import AnonRateThrottle

from . import selectors, services
from .models import Workspace
from .serializers import (
    MembershipInputSerializer,
    MembershipSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
    UserDetailSerializer,
    WorkspaceInputSerializer,
    WorkspaceSerializer,
    WorkspaceUpdateSerializer,
)

MSG_BAD_CREDENTIALS = "Unable to log in with the given username and password."

ERRORS = {
    400: OpenApiResponse(description="Invalid input"),
    401: OpenApiResponse(description="No or invalid token"),
    404: OpenApiResponse(description="Not found, or not a member of the workspace"),
}


@extend_schema(tags=["account"])
class WorkspaceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """The caller's workspaces. Not a WorkspaceScopedViewSet: it lists workspaces, not their objects."""

    serializer_class = WorkspaceSerializer
    pagination_class = None  # the Ximilar API answers a bare JSON array
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Workspace.objects.none()
        return selectors.workspace_list_for_user(user=self.request.user)

    @extend_schema(responses={200: WorkspaceSerializer(many=True), 401: ERRORS[401]})
    def list(self, request, *args, **kwargs):
        services.workspace_ensure_default(user=request.user)
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={200: WorkspaceSerializer, 401: ERRORS[401], 404: ERRORS[404]})
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(request=WorkspaceInputSerializer, responses={201: WorkspaceSerializer, **ERRORS})
    def create(self, request):
        data = WorkspaceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        workspace = services.workspace_create(owner=request.user, **data.validated_data)
        return Response(self.get_serializer(workspace).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=WorkspaceUpdateSerializer, responses={200: WorkspaceSerializer, **ERRORS})
    def partial_update(self, request, pk=None):
        workspace = self.get_object()
        data = WorkspaceUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.workspace_update(workspace=workspace, actor=request.user, **data.validated_data)
        return Response(self.get_serializer(workspace).data)

    @extend_schema(request=WorkspaceUpdateSerializer, responses={200: WorkspaceSerializer, **ERRORS})
    def update(self, request, pk=None):
        return self.partial_update(request, pk)

    @extend_schema(
        responses={
            204: None,
            403: OpenApiResponse(description="Not the owner"),
            409: OpenApiResponse(description="The caller's default workspace, which cannot be deleted"),
            **ERRORS,
        }
    )
    def destroy(self, request, pk=None):
        services.workspace_delete(workspace=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["GET"], responses={200: MembershipSerializer(many=True), **ERRORS})
    @extend_schema(
        methods=["POST"],
        request=MembershipInputSerializer,
        responses={201: MembershipSerializer, 403: OpenApiResponse(description="Not the owner"), **ERRORS},
    )
    @action(detail=True, methods=["get", "post"])
    def members(self, request, pk=None):
        workspace = self.get_object()
        if request.method == "GET":
            return Response(
                MembershipSerializer(selectors.membership_list(workspace=workspace), many=True).data
            )
        data = MembershipInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_add(
            workspace=workspace,
            actor=request.user,
            username_or_email=data.validated_data.get("username") or data.validated_data["email"],
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={
            204: None,
            403: OpenApiResponse(description="Not the owner"),
            409: OpenApiResponse(description="The owner, who cannot be removed"),
            **ERRORS,
        },
    )
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<user_id>\d+)")
    def remove_member(self, request, pk=None, user_id=None):
        services.membership_remove(workspace=self.get_object(), actor=request.user, user_id=int(user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["account"], responses={200: UserDetailSerializer, 401: ERRORS[401]})
class UserDetailView(APIView):
    """The caller's account: ``{id, email, first_name, last_name, default_workspace}``."""

    def get(self, request):
        default = services.workspace_ensure_default(user=request.user)
        return Response(UserDetailSerializer(request.user, context={"default_workspace": default}).data)


class TokenView(APIView):
    """Exchange a username and password for the user's API token."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [AnonRateThrottle]

    @extend_schema(
        tags=["account"],
        request=TokenRequestSerializer,
        responses={
            200: TokenResponseSerializer,
            400: ERRORS[400],
            429: OpenApiResponse(description="Too many failed logins for this username or address"),
        },
        auth=[],
    )
    def post(self, request):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # Django's own request, not DRF's wrapper: django-axes marks a locked-out login on the
        # request it is given, and its middleware (which sees only Django's) answers it with 429.
        user = authenticate(request._request, **data.validated_data)
        if user is None or not user.is_active:
            raise exceptions.ValidationError({"non_field_errors": [MSG_BAD_CREDENTIALS]})
        services.workspace_ensure_default(user=user)
        return Response({"token": services.token_get_or_create(user=user)})
