from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.workspaces.tenancy import WORKSPACE_PARAMETER, WorkspaceScopedViewSet

from . import selectors, services
from .filters import LabelFilter
from .serializers import LabelInputSerializer, LabelSerializer, LabelUpdateSerializer

ERRORS = {
    400: OpenApiResponse(description="Invalid input, or a business rule refused the change"),
    401: OpenApiResponse(description="No or invalid token"),
    404: OpenApiResponse(description="No such label in the workspace, or not a member of the workspace"),
}


TYPE_LOCKED = OpenApiResponse(description="The type of a label attached to a task: detach it first")
NEGATIVE_LABEL_CONFLICT = OpenApiResponse(
    description="The negative label of a multi_label task: delete the task first"
)


@extend_schema(tags=["labels"], parameters=[WORKSPACE_PARAMETER])
class LabelViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    WorkspaceScopedViewSet,
):
    """Labels of a workspace (categories, tags, values), attachable to several tasks."""

    serializer_class = LabelSerializer
    filterset_class = LabelFilter

    def get_workspace_queryset(self, workspace):
        return selectors.label_list(workspace=workspace)

    def _answer(self, label, status_code=status.HTTP_200_OK) -> Response:
        # Re-read through the selector so the counts are the stored ones.
        label = selectors.label_get(workspace=self.workspace, label_id=label.pk)
        return Response(LabelSerializer(label).data, status=status_code)

    @extend_schema(
        summary="List the workspace's labels with their image and task counts",
        responses={200: LabelSerializer(many=True), **ERRORS},
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="Get a label", responses={200: LabelSerializer, **ERRORS})
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Create a label", request=LabelInputSerializer, responses={201: LabelSerializer, **ERRORS}
    )
    def create(self, request):
        data = LabelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = {key: value for key, value in data.validated_data.items() if key != "workspace"}
        label = services.label_create(workspace=self.workspace, **fields)
        return self._answer(label, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace a label's fields",
        request=LabelUpdateSerializer,
        responses={200: LabelSerializer, **ERRORS, 409: TYPE_LOCKED},
    )
    def update(self, request, pk=None):
        return self._update(request, partial=False)

    @extend_schema(
        summary="Change a label",
        request=LabelUpdateSerializer,
        responses={200: LabelSerializer, **ERRORS, 409: TYPE_LOCKED},
    )
    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool) -> Response:
        label = self.get_object()
        data = LabelUpdateSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        fields = {key: value for key, value in data.validated_data.items() if key != "workspace"}
        return self._answer(services.label_update(label=label, data=fields))

    @extend_schema(
        summary="Delete a label: detached from every task, its images stay",
        responses={204: None, 409: NEGATIVE_LABEL_CONFLICT, **ERRORS},
    )
    def destroy(self, request, pk=None):
        services.label_delete(label=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Delete a label and every training image that carries it",
        request=None,
        responses={
            204: None,
            202: OpenApiResponse(description="A large label: wiped by a job; `{id, images, status}`"),
            409: NEGATIVE_LABEL_CONFLICT,
            **ERRORS,
        },
    )
    @action(detail=True, methods=["delete"])
    def wipe(self, request, pk=None):
        """Delete the label and every training image that carries it (with their files).

        Up to ``VF_WIPE_INLINE_MAX`` images now (204); more by a job in committed batches (202)."""
        queued = services.label_wipe_start(label=self.get_object())
        if queued is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(queued, status=status.HTTP_202_ACCEPTED)
