"""Endpoints: ``model/`` (list, detail, delete, download, evaluation), and the ``train`` action
that creates versions: ``task/{id}/train/`` of the recognition API (registered here, beside the
task's other routes in apps/tasks) and of the detection API (apps/detection/views.py mixes it in).

The train action lives here because training stands on the tasks app: the task viewset in
apps/tasks cannot reach the training lifecycle, and a train action in each task viewset would be
a copy."""

from __future__ import annotations

import django_filters
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.quotas.schema import QUOTA_EXCEEDED
from apps.tasks import selectors as task_selectors
from apps.tasks.filters import TaskFilter
from apps.tasks.serializers import TaskSerializer
from apps.workspaces.tenancy import WORKSPACE_PARAMETER, WorkspaceScopedViewSet

from . import selectors, services
from .models import ModelVersion
from .serializers import EvaluationSerializer, ModelVersionSerializer

ERRORS = {
    401: OpenApiResponse(description="No or invalid token"),
    404: OpenApiResponse(description="Not found in this workspace (or not a member of the workspace)"),
}
BAD_REQUEST = OpenApiResponse(description='Refused, with `{"detail": "..."}` saying why')
# The recognition task's train action's answers, as the model endpoints describe them.
TRAIN_RESPONSES = {
    200: ModelVersionSerializer,
    400: BAD_REQUEST,
    401: ERRORS[401],
    404: ERRORS[404],
    503: OpenApiResponse(description="The job queue is unreachable; nothing was queued"),
    **QUOTA_EXCEEDED,  # versions kept, trainings queued at once
}


def download_response(*, version: ModelVersion, artifact: str = "bundle") -> FileResponse:
    """The download of a TRAINED version as a file answer (the API's and the console's)."""
    path, filename, temporary = services.model_version_download(version=version, artifact=artifact)
    handle = open(path, "rb")  # noqa: SIM115 - FileResponse closes it
    if temporary:
        path.unlink()  # the open handle keeps the data until the response is sent (POSIX)
    content_type = "application/zip" if artifact == "bundle" else "application/octet-stream"
    return FileResponse(handle, as_attachment=True, filename=filename, content_type=content_type)


class ModelVersionFilter(django_filters.FilterSet):
    task = django_filters.UUIDFilter(field_name="task_id", help_text="only this task's versions")

    class Meta:
        model = ModelVersion
        fields = ["task"]


@extend_schema(tags=["model"])
@extend_schema_view(
    list=extend_schema(
        summary="List model versions",
        description="Trained and training versions of the workspace's tasks, newest first; `?task=` filters.",
        parameters=[WORKSPACE_PARAMETER],
        responses={200: ModelVersionSerializer(many=True), 401: ERRORS[401], 404: ERRORS[404]},
    ),
    retrieve=extend_schema(
        summary="Get a model version",
        description="Status, progress (0 to 100; epoch and loss while training) and metrics.",
        parameters=[WORKSPACE_PARAMETER],
        responses={200: ModelVersionSerializer, **ERRORS},
    ),
    destroy=extend_schema(
        summary="Delete a model version",
        description=(
            "Deletes the version and its model files. The task's production version cannot be deleted "
            "(400), nor a version that is queued or training (409)."
        ),
        parameters=[WORKSPACE_PARAMETER],
        responses={
            204: None,
            400: BAD_REQUEST,
            409: OpenApiResponse(description="The version is queued or training"),
            **ERRORS,
        },
    ),
)
class ModelVersionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, WorkspaceScopedViewSet
):
    serializer_class = ModelVersionSerializer
    filterset_class = ModelVersionFilter

    def get_workspace_queryset(self, workspace):
        return selectors.model_version_list()

    def perform_destroy(self, instance):
        services.model_version_delete(version=instance)

    @extend_schema(
        summary="Download a model version",
        description=(
            "A zip of the TRAINED version's weights (safetensors), model.json (architecture, input "
            "size, normalisation, labels, thresholds, metrics), an ONNX export and a README, so the model "
            "can be served elsewhere. `?artifact=onnx` answers the ONNX file alone: input `images` is a "
            "uint8 batch (N, 3, S, S) of RGB images resized to the input size; output `scores` holds the "
            "probabilities in label order (regression: values)."
        ),
        parameters=[
            WORKSPACE_PARAMETER,
            OpenApiParameter("artifact", str, enum=["bundle", "onnx"], description="default: bundle"),
        ],
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            400: BAD_REQUEST,
            **ERRORS,
        },
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        artifact = request.query_params.get("artifact", "bundle")
        if artifact not in ("bundle", "onnx"):
            raise ValidationError({"artifact": ['Choose "bundle" or "onnx".']})
        return download_response(version=self.get_object(), artifact=artifact)

    @extend_schema(
        summary="Evaluation of a model version",
        description=(
            "The test-side predictions of a TRAINED version, one record per test image: the image id, its "
            "true labels and the predicted labels with their probabilities (regression: values and the "
            "error); wrong predictions first, so you can see what the model gets wrong."
        ),
        parameters=[WORKSPACE_PARAMETER],
        responses={200: EvaluationSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def evaluation(self, request, pk=None):
        version = self.get_object()
        return Response(
            {
                "id": version.pk,
                "task": version.task_id,
                "version": version.version,
                "train_status": version.train_status,
                "count": len(version.evaluation or []),
                "records": version.evaluation or [],
            },
            status=status.HTTP_200_OK,
        )


class TrainActionMixin:
    """The ``train`` action of a task viewset: queue the task's next model version and answer it.

    One body for both APIs' task viewsets; each describes the action in its own words
    (``extend_schema_view(train=...)``)."""

    @action(detail=True, methods=["post"])
    def train(self, request, pk=None):
        version = services.task_train(task=self.get_object(), user=request.user)
        return Response(ModelVersionSerializer(selectors.model_version_list().get(pk=version.pk)).data)


@extend_schema(tags=["tasks"], parameters=[WORKSPACE_PARAMETER])
@extend_schema_view(
    train=extend_schema(
        tags=["training"],
        summary="Train a task",
        description=(
            "Queue the next model version of the task for training and answer it (`train_status` "
            "QUEUED). While a version is QUEUED or IN_TRAINING nothing new is created and that version "
            "is answered. Refused with 400 naming the labels that are short when the task has fewer "
            "than 2 labels (multi_class, multi_label), a label has fewer than MIN_IMAGES_PER_LABEL "
            "images, or (regression) fewer than that many images have a value. The owner gets an "
            "e-mail when training starts and when it ends."
        ),
        request=None,
        responses=TRAIN_RESPONSES,
    )
)
class TaskTrainViewSet(TrainActionMixin, WorkspaceScopedViewSet):
    """``task/{id}/train/`` of the recognition API: the recognition tasks of the workspace, as the
    task viewset (apps/tasks/views.py) finds them."""

    # As on the task's other routes: what OPTIONS describes, and the filters get_object() honours.
    serializer_class = TaskSerializer
    filterset_class = TaskFilter

    def get_workspace_queryset(self, workspace):
        return task_selectors.task_list(workspace=workspace)
