"""``webhook/``: a workspace's webhooks (its owner's only), a ping to test one, and its deliveries.

- ``GET``/``POST webhook/``, ``GET``/``PUT``/``PATCH``/``DELETE webhook/{id}/``: the secret is in
  the answer that creates the webhook, never again;
- ``POST webhook/{id}/test/``: a ``ping`` delivery, sent by the worker like any event;
- ``GET webhook/{id}/deliveries/``: the delivery log, newest first, each with its attempts (paged).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.workspaces.tenancy import WORKSPACE_PARAMETER, WorkspaceScopedViewSet

from . import selectors, services
from .serializers import (
    WebhookCreatedSerializer,
    WebhookDeliverySerializer,
    WebhookInputSerializer,
    WebhookSerializer,
)

ERRORS = {
    400: OpenApiResponse(
        description='Refused, with `{"detail": "..."}` or `{field: [messages]}` saying why (a URL that '
        "is not http(s) or resolves to a non-public address, an unknown event)"
    ),
    401: OpenApiResponse(description="No or invalid token"),
    403: OpenApiResponse(description="A member who is not the workspace's owner"),
    404: OpenApiResponse(description="No such webhook in the workspace, or not a member of the workspace"),
}


def _fields(serializer: WebhookInputSerializer) -> dict:
    return {key: value for key, value in serializer.validated_data.items() if key != "workspace"}


@extend_schema(tags=["webhooks"], parameters=[WORKSPACE_PARAMETER])
class WebhookViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Webhooks of a workspace: its events POSTed to its owner's URLs, signed with each webhook's
    secret (``X-Signature-256: sha256=<hex>``), retried with backoff, every attempt logged."""

    serializer_class = WebhookSerializer
    # Owner-only, so of the scoped tokens only a full one (apps/tokens/scopes.py).
    access_kind = "owner"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if hasattr(self, "workspace"):  # not for a method the view does not serve (a 405)
            services.webhook_owner_check(workspace=self.workspace, user=request.user)

    def get_workspace_queryset(self, workspace):
        return selectors.webhook_list(workspace=workspace)

    @extend_schema(
        summary="List the workspace's webhooks", responses={200: WebhookSerializer(many=True), **ERRORS}
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="Get a webhook", responses={200: WebhookSerializer, **ERRORS})
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Register a URL for events",
        description="The answer holds the webhook's `secret`, the key of its deliveries' signatures; "
        "it is shown this once.",
        request=WebhookInputSerializer,
        responses={201: WebhookCreatedSerializer, **ERRORS},
    )
    def create(self, request):
        data = WebhookInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        webhook = services.webhook_create(workspace=self.workspace, actor=request.user, **_fields(data))
        return Response(WebhookCreatedSerializer(webhook).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace a webhook's URL, events, description and state",
        request=WebhookInputSerializer,
        responses={200: WebhookSerializer, **ERRORS},
    )
    def update(self, request, pk=None):
        return self._update(request, partial=False)

    @extend_schema(
        summary="Change a webhook",
        request=WebhookInputSerializer,
        responses={200: WebhookSerializer, **ERRORS},
    )
    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool) -> Response:
        webhook = self.get_object()
        data = WebhookInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        webhook = services.webhook_update(webhook=webhook, actor=request.user, data=_fields(data))
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(summary="Delete a webhook and its delivery log", responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        services.webhook_delete(webhook=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Send a ping to the webhook",
        description="A `ping` delivery, signed and sent by the worker like any event (retried too); "
        "the answer is the delivery as it stands, its outcome in `GET webhook/{id}/deliveries/`.",
        request=None,
        responses={202: WebhookDeliverySerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        delivery = services.webhook_test(webhook=self.get_object(), actor=request.user)
        # Re-read: with jobs inline (CELERY_TASK_ALWAYS_EAGER) it was attempted at the commit.
        delivery = selectors.delivery_get(workspace=self.workspace, delivery_id=delivery.pk)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="The webhook's deliveries, newest first, with every attempt",
        responses={200: WebhookDeliverySerializer(many=True), **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        page = self.paginate_queryset(selectors.delivery_list(webhook=self.get_object()))
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
