from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.labels import selectors as label_selectors
from apps.labels.serializers import LabelIdSerializer
from apps.workspaces.tenancy import WORKSPACE_PARAMETER, WorkspaceScopedViewSet

from . import selectors, services
from .filters import TaskFilter
from .serializers import TaskInputSerializer, TaskSerializer, TaskUpdateSerializer

ERRORS = {
    400: OpenApiResponse(description="Invalid input, or a business rule refused the change"),
    401: OpenApiResponse(description="No or invalid token"),
    404: OpenApiResponse(description="No such task (or label) in the workspace, or not a member of it"),
}

# Well-formed requests that the task's state refuses (apps/tasks/services.py).
UPDATE_CONFLICT = OpenApiResponse(
    description="The version to deploy is not trained, or the type of a task with labels or versions"
)
ATTACH_CONFLICT = OpenApiResponse(description="The label's type does not match the task's type")


def _without_workspace(validated: dict) -> dict:
    # ``workspace`` in a body only picks the workspace (the base viewset reads it); not a task field.
    return {key: value for key, value in validated.items() if key != "workspace"}


@extend_schema(tags=["tasks"], parameters=[WORKSPACE_PARAMETER])
class TaskViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    WorkspaceScopedViewSet,
):
    """Recognition tasks of a workspace: their labels, deployed version and training status."""

    # (The docstring is the schema's description of these routes.) ``task/{id}/train/`` is the
    # training lifecycle's: apps/training/views.py, TaskTrainViewSet.
    serializer_class = TaskSerializer
    filterset_class = TaskFilter

    def get_workspace_queryset(self, workspace):
        return selectors.task_list(workspace=workspace)

    def _answer(self, task, status_code=status.HTTP_200_OK) -> Response:
        # Re-read through the selector: fresh labels, in their stable order.
        task = selectors.task_get(workspace=self.workspace, task_id=task.pk)
        return Response(TaskSerializer(task).data, status=status_code)

    @extend_schema(summary="List the workspace's tasks", responses={200: TaskSerializer(many=True), **ERRORS})
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="Get a task", responses={200: TaskSerializer, **ERRORS})
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Create a task (a multi_label task gets its negative label)",
        request=TaskInputSerializer,
        responses={201: TaskSerializer, **ERRORS},
    )
    def create(self, request):
        data = TaskInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        task = services.task_create(
            workspace=self.workspace, owner=request.user, **_without_workspace(data.validated_data)
        )
        return self._answer(task, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace a task's fields",
        request=TaskUpdateSerializer,
        responses={200: TaskSerializer, **ERRORS, 409: UPDATE_CONFLICT},
    )
    def update(self, request, pk=None):
        return self._update(request, partial=False)

    @extend_schema(
        summary="Change a task; `production_version` deploys a trained version",
        request=TaskUpdateSerializer,
        responses={200: TaskSerializer, **ERRORS, 409: UPDATE_CONFLICT},
    )
    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool) -> Response:
        task = self.get_object()
        data = TaskUpdateSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        return self._answer(services.task_update(task=task, data=_without_workspace(data.validated_data)))

    @extend_schema(
        summary="Delete a task and its model versions (labels and images stay)",
        responses={
            204: None,
            409: OpenApiResponse(description="A version of the task is training"),
            **ERRORS,
        },
    )
    def destroy(self, request, pk=None):
        services.task_delete(task=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Attach a label of the matching type to the task",
        request=LabelIdSerializer,
        responses={200: TaskSerializer, **ERRORS, 409: ATTACH_CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="add-label")
    def add_label(self, request, pk=None):
        """Attach a label of the same workspace; its type must match the task's type."""
        task, label = self._task_and_label(request)
        return self._answer(services.label_attach(label=label, task=task))

    @extend_schema(
        summary="Detach a label from the task",
        request=LabelIdSerializer,
        responses={
            200: TaskSerializer,
            409: OpenApiResponse(description="The task's negative label stays attached to it"),
            **ERRORS,
        },
    )
    @action(detail=True, methods=["post"], url_path="remove-label")
    def remove_label(self, request, pk=None):
        """Detach a label from the task; the label and its images stay."""
        task, label = self._task_and_label(request)
        return self._answer(services.label_detach(label=label, task=task))

    def _task_and_label(self, request):
        task = self.get_object()
        data = LabelIdSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        label = label_selectors.label_get(workspace=task.workspace, label_id=data.validated_data["label_id"])
        return task, label
