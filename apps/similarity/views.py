"""Similarity on the recognition API's tasks:

- ``POST task/{id}/similar/``: the images of the workspace most like each record;
- ``GET task/{id}/similar/status/``: whether searches can be answered, and the descriptor job's progress;
- ``POST task/{id}/similar/refresh/``: compute the descriptors again now (in the background).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.parsers import JSONParser
from apps.tasks import selectors as task_selectors
from apps.workspaces.tenancy import WORKSPACE_PARAMETER, WorkspaceScopedViewSet

from . import selectors, services
from .serializers import (
    DescriptorRunSerializer,
    SimilarRequestSerializer,
    SimilarResultSerializer,
    SimilarStatusSerializer,
)

ERRORS = {
    400: OpenApiResponse(description='Refused, with `{"detail": "..."}` or `{field: [messages]}` saying why'),
    401: OpenApiResponse(description="No or invalid token"),
    404: OpenApiResponse(description="No such task, or an `_id` that is no image of the workspace"),
}
NO_INDEX = OpenApiResponse(description="The task has no finished descriptors yet (or nothing deployed)")


class SimilarityViewSet(WorkspaceScopedViewSet):
    """Similarity search over the workspace's images, by a recognition task's descriptors."""

    serializer_class = SimilarResultSerializer
    parser_classes = [JSONParser]

    def get_workspace_queryset(self, workspace):
        return task_selectors.task_list(workspace=workspace)

    @extend_schema(
        tags=["similarity"],
        summary="Images like this one",
        description="For each record (an image of the workspace by `_id`, or `_url` / `_base64` read as "
        "classify reads them) the `k` images of the workspace nearest to it by the descriptors of the task's "
        "version (the latest whose descriptors are computed; `similar/status/`), nearest first, with the "
        "cosine distance of the descriptors. An `_id` record's own image is left out. A record that cannot "
        "be read gets its own `_status`. 409 while the task has no computed descriptors.",
        parameters=[WORKSPACE_PARAMETER],
        request=SimilarRequestSerializer,
        responses={200: SimilarResultSerializer, **ERRORS, 409: NO_INDEX},
    )
    @action(detail=True, methods=["post"])
    def similar(self, request, pk=None):
        task = self.get_object()
        body = SimilarRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.similar_images(
            task=task, records=body.validated_data["records"], k=body.validated_data["k"]
        )
        return Response(SimilarResultSerializer(result, context=self.get_serializer_context()).data)

    @extend_schema(
        tags=["similarity"],
        summary="Similarity status and the descriptor job's progress",
        description="`ready` when searches can be answered (by `version`'s `descriptors`); `run` is the "
        "latest computation of the descriptors, with its `progress` while it runs.",
        parameters=[WORKSPACE_PARAMETER],
        responses={200: SimilarStatusSerializer, 401: ERRORS[401], 404: ERRORS[404]},
    )
    @action(detail=True, methods=["get"], url_path="similar/status")
    def similar_status(self, request, pk=None):
        return Response(SimilarStatusSerializer(selectors.similarity_status(task=self.get_object())).data)

    @extend_schema(
        tags=["similarity"],
        summary="Compute the descriptors again",
        description="Queue the descriptors of every image of the workspace by the task's deployed version "
        "(this also runs after each training that deploys a version). While one is queued or running, that "
        "one is answered. 409 when nothing is deployed; 503 when the job queue is unreachable.",
        parameters=[WORKSPACE_PARAMETER],
        request=None,
        responses={
            202: DescriptorRunSerializer,
            401: ERRORS[401],
            404: ERRORS[404],
            409: NO_INDEX,
            503: OpenApiResponse(description="Queue down"),
        },
    )
    @action(detail=True, methods=["post"], url_path="similar/refresh")
    def similar_refresh(self, request, pk=None):
        run = services.descriptor_run_start(task=self.get_object())
        return Response(DescriptorRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
