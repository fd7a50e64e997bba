from __future__ import annotations

from django.contrib.auth import authenticate
from django.db import connection
from django.http import JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

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

    @extend_schema(responses={204: None, 403: OpenApiResponse(description="Not the owner"), **ERRORS})
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
        request=None, responses={204: None, 403: OpenApiResponse(description="Not the owner"), **ERRORS}
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
        responses={200: TokenResponseSerializer, 400: ERRORS[400]},
        auth=[],
    )
    def post(self, request):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, **data.validated_data)
        if user is None or not user.is_active:
            raise exceptions.ValidationError({"non_field_errors": [MSG_BAD_CREDENTIALS]})
        services.workspace_ensure_default(user=user)
        return Response({"token": services.token_get_or_create(user=user)})


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable"
        return f"error: {exc.__class__.__name__}"


def _check_broker() -> str:
    from config.celery import broker_answers

    return "ok" if broker_answers() else "error: unreachable"


@extend_schema(
    tags=["health"],
    auth=[],
    responses={
        200: inline_serializer(
            "Health",
            {
                "status": serializers.CharField(),
                "database": serializers.CharField(),
                "broker": serializers.CharField(),
            },
        ),
        503: OpenApiResponse(OpenApiTypes.OBJECT, description="A dependency is unreachable"),
    },
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def health(request):
    """Liveness and readiness: 200 when the database and the broker answer, else 503."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(value == "ok" for value in checks.values())
    return Response(
        {"status": "ok" if healthy else "unavailable", **checks},
        status=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


# Django's own error pages (a path no route matches, an uncaught exception) answer JSON like the
# rest of the API, never an HTML page a client cannot parse. config/urls.py installs them.
def not_found(request, exception=None):
    return JsonResponse({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)


def server_error(request):
    return JsonResponse({"detail": "Server error."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def bad_request(request, exception=None):
    return JsonResponse({"detail": "Bad request."}, status=status.HTTP_400_BAD_REQUEST)
