"""Views that belong to no resource: the front door, the favicon, the health check and Django's
JSON error pages."""

from __future__ import annotations

from django.db import connection
from django.http import HttpResponseRedirect, JsonResponse
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from . import broker

# What an API client finds at ``/``: the API's roots and its documents (paths, so they hold behind
# any proxy that keeps them).
API_INDEX = {
    "name": "VisionForge",
    "description": "Custom image recognition and detection with a Ximilar / Vize.ai compatible API.",
    "authentication": "Authorization: Token <your token>; get one with POST /account/v2/token/.",
    "apis": {
        "recognition": "/recognition/v2/",
        "detection": "/detection/v2/",
        "account": "/account/v2/",
        "vize_v2": "/v2/",
        "vize_v1": "/v1/",
    },
    "docs": {"swagger_ui": "/api/docs/", "openapi_schema": "/api/schema/"},
    "console": "/console/",
    "health": "/health/",
}


@require_safe
def index(request):
    """The front door: a browser goes to the console (the task list when signed in, else the
    sign-in page); an API client (JSON, or any type first) gets the index of the API's roots.

    A plain Django view, so the OpenAPI schema does not describe it (it is no part of the
    Ximilar API)."""
    preferred = request.get_preferred_type(["application/json", "text/html"])
    if preferred == "text/html":
        signed_in = request.user.is_authenticated
        return HttpResponseRedirect(reverse("console:task-list" if signed_in else "console:login"))
    return JsonResponse(API_INDEX)


@require_safe
def favicon(request):
    """Browsers ask for /favicon.ico on every page they have no icon link for: the console's."""
    return HttpResponseRedirect(static("console/favicon.svg"))


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable"
        return f"error: {exc.__class__.__name__}"


def _check_broker() -> str:
    return "ok" if broker.broker_answers() else "error: unreachable"


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
                "database_engine": serializers.CharField(help_text="sqlite (one machine only) or postgresql"),
                "broker_transport": serializers.CharField(help_text="filesystem (one machine only) or redis"),
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
    # Which ones: SQLite and the filesystem broker serve one machine only (docs/operations.md).
    kinds = {"database_engine": connection.vendor, "broker_transport": broker.broker_transport()}
    return Response(
        {"status": "ok" if healthy else "unavailable", **checks, **kinds},
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
