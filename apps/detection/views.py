"""Endpoints under ``detection/v2/``: task/, label/, object/ (detect/ is apps/inference).

Tasks and labels are scoped to the resolved workspace like every other endpoint. Objects are
found among every workspace the caller belongs to (the client never sends a workspace for object
calls), or in the one named with ``workspace=``; never elsewhere.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.quotas.schema import QUOTA_EXCEEDED
from apps.tasks import services as task_services
from apps.training.serializers import ModelVersionSerializer
from apps.training.views import TrainActionMixin
from apps.workspaces.selectors import workspace_list_for_user
from apps.workspaces.tenancy import (
    DEFAULT_WORKSPACE_ALIAS,
    WORKSPACE_PARAMETER,
    WorkspaceScopedViewSet,
    bound_workspace,
)

from . import selectors, services
from .filters import DetectionLabelFilter, DetectionObjectFilter
from .serializers import (
    DetectionImportReportSerializer,
    DetectionLabelIdSerializer,
    DetectionLabelInputSerializer,
    DetectionLabelSerializer,
    DetectionLabelUpdateSerializer,
    DetectionObjectInputSerializer,
    DetectionObjectSerializer,
    DetectionObjectUpdateSerializer,
    DetectionTaskInputSerializer,
    DetectionTaskSerializer,
    DetectionTaskUpdateSerializer,
    DetectionZipImportSerializer,
    NegativeImageIdSerializer,
    ObjectLabelValueSerializer,
    RecognitionTaskIdSerializer,
)

ERRORS = {
    400: OpenApiResponse(
        description='Invalid input or a refused change: `{"detail": "..."}` or DRF field errors'
    ),
    401: OpenApiResponse(description="No or invalid token"),
    404: OpenApiResponse(description='Not found among your workspaces: `{"detail": "..."}`'),
}


def _valid(serializer_class, request, partial: bool = False) -> dict:
    serializer = serializer_class(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return {k: v for k, v in serializer.validated_data.items() if k != "workspace"}


@extend_schema(tags=["detection"], parameters=[WORKSPACE_PARAMETER])
@extend_schema_view(
    train=extend_schema(
        summary="Train a detection task (the next model version, QUEUED)",
        request=None,
        responses={200: ModelVersionSerializer, **ERRORS, **QUOTA_EXCEEDED},
    )
)
class DetectionTaskViewSet(
    TrainActionMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet
):
    """Detection tasks of a workspace: their labels, negative images, versions and training."""

    # (The docstring is the schema's description of these routes.) The train action is the
    # training lifecycle's: apps/training/views.py, TrainActionMixin.
    serializer_class = DetectionTaskSerializer

    def get_workspace_queryset(self, workspace):
        return selectors.detection_task_list(workspace=workspace)

    def _answer(self, task, code=status.HTTP_200_OK) -> Response:
        task = selectors.detection_task_get(workspace=self.workspace, task_id=task.pk)
        return Response(DetectionTaskSerializer(task).data, status=code)

    @extend_schema(
        summary="Create a detection task",
        request=DetectionTaskInputSerializer,
        responses={201: DetectionTaskSerializer, **ERRORS},
    )
    def create(self, request):
        data = _valid(DetectionTaskInputSerializer, request)
        task = services.detection_task_create(workspace=self.workspace, owner=request.user, **data)
        return self._answer(task, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a detection task; `production_version` deploys a version",
        request=DetectionTaskUpdateSerializer,
        responses={
            200: DetectionTaskSerializer,
            **ERRORS,
            409: OpenApiResponse(description="The version to deploy is not trained"),
        },
    )
    def update(self, request, pk=None):
        task = self.get_object()
        return self._answer(
            task_services.task_update(task=task, data=_valid(DetectionTaskUpdateSerializer, request))
        )

    @extend_schema(
        summary="Change a detection task",
        request=DetectionTaskUpdateSerializer,
        responses={
            200: DetectionTaskSerializer,
            **ERRORS,
            409: OpenApiResponse(description="The version to deploy is not trained"),
        },
    )
    def partial_update(self, request, pk=None):
        return self.update(request, pk)

    @extend_schema(
        summary="Delete a detection task and its versions (labels, images, objects stay)",
        responses={204: None, 409: OpenApiResponse(description="A version is training"), **ERRORS},
    )
    def destroy(self, request, pk=None):
        task_services.task_delete(task=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _label(self, request):
        label_id = _valid(DetectionLabelIdSerializer, request)["label_id"]
        return selectors.detection_label_get(workspace=self.workspace, label_id=label_id)

    @extend_schema(
        summary="Attach a detection label",
        request=DetectionLabelIdSerializer,
        responses={200: DetectionTaskSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="add-label")
    def add_label(self, request, pk=None):
        task = self.get_object()
        return self._answer(services.detection_label_attach(task=task, label=self._label(request)))

    @extend_schema(
        summary="Detach a detection label",
        request=DetectionLabelIdSerializer,
        responses={200: DetectionTaskSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="remove-label")
    def remove_label(self, request, pk=None):
        task = self.get_object()
        return self._answer(services.detection_label_detach(task=task, label=self._label(request)))

    def _image(self, request):
        image_id = _valid(NegativeImageIdSerializer, request)["image_id"]
        return selectors.image_get(workspace=self.workspace, image_id=image_id)

    @extend_schema(
        summary="Add a negative image (no objects: trains as background)",
        request=NegativeImageIdSerializer,
        responses={200: DetectionTaskSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="add-image")
    def add_image(self, request, pk=None):
        task = self.get_object()
        return self._answer(services.detection_task_add_negative_image(task=task, image=self._image(request)))

    @extend_schema(
        summary="Remove a negative image from the task",
        request=NegativeImageIdSerializer,
        responses={200: DetectionTaskSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="remove-image")
    def remove_image(self, request, pk=None):
        task = self.get_object()
        return self._answer(
            services.detection_task_remove_negative_image(task=task, image=self._image(request))
        )

    @extend_schema(
        summary="Import images with their boxes (COCO JSON or Pascal VOC XML in a zip)",
        description=(
            "A zip of images and annotation files: COCO `.json` (bbox `[x, y, w, h]`) and/or Pascal VOC "
            "`.xml` (1-based `bndbox`). Images are stored at their own size; labels are found by name "
            "or created and attached to the task; images without boxes become negatives. The report "
            "lists what was skipped and why (missing image files, duplicates, boxes outside the image)."
        ),
        request={"multipart/form-data": DetectionZipImportSerializer},
        responses={201: DetectionImportReportSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="import-zip")
    def import_zip(self, request, pk=None):
        task = self.get_object()
        data = _valid(DetectionZipImportSerializer, request)
        report = services.detection_import_zip(workspace=self.workspace, file=data["zip"], task=task)
        return Response(report, status=status.HTTP_201_CREATED)


@extend_schema(tags=["detection"], parameters=[WORKSPACE_PARAMETER])
class DetectionLabelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Detection labels of a workspace (``?task=`` the labels of one detection task)."""

    serializer_class = DetectionLabelSerializer
    filterset_class = DetectionLabelFilter

    def get_workspace_queryset(self, workspace):
        return selectors.detection_label_list(workspace=workspace)

    def _answer(self, label, code=status.HTTP_200_OK) -> Response:
        label = selectors.detection_label_get(workspace=self.workspace, label_id=label.pk)
        return Response(DetectionLabelSerializer(label).data, status=code)

    @extend_schema(
        summary="Create a detection label (`color` default #FFFFFF)",
        request=DetectionLabelInputSerializer,
        responses={201: DetectionLabelSerializer, **ERRORS},
    )
    def create(self, request):
        label = services.detection_label_create(
            workspace=self.workspace, **_valid(DetectionLabelInputSerializer, request)
        )
        return self._answer(label, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a detection label",
        request=DetectionLabelUpdateSerializer,
        responses={200: DetectionLabelSerializer, **ERRORS},
    )
    def update(self, request, pk=None):
        data = _valid(DetectionLabelUpdateSerializer, request, partial=True)
        return self._answer(services.detection_label_update(label=self.get_object(), data=data))

    @extend_schema(
        summary="Change a detection label",
        request=DetectionLabelUpdateSerializer,
        responses={200: DetectionLabelSerializer, **ERRORS},
    )
    def partial_update(self, request, pk=None):
        return self.update(request, pk)

    @extend_schema(
        summary="Delete a detection label and every object drawn with it", responses={204: None, **ERRORS}
    )
    def destroy(self, request, pk=None):
        services.detection_label_delete(label=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _link(self, request, link: bool) -> Response:
        label = self.get_object()
        task_id = _valid(RecognitionTaskIdSerializer, request)["task_id"]
        task = selectors.recognition_task_get(workspace=self.workspace, task_id=task_id)
        return self._answer(services.detection_label_link_task(label=label, task=task, link=link))

    @extend_schema(
        summary="Link a recognition task to the label",
        request=RecognitionTaskIdSerializer,
        responses={200: DetectionLabelSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="add-task")
    def add_task(self, request, pk=None):
        return self._link(request, True)

    @extend_schema(
        summary="Unlink a recognition task from the label",
        request=RecognitionTaskIdSerializer,
        responses={200: DetectionLabelSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="remove-task")
    def remove_task(self, request, pk=None):
        return self._link(request, False)


@extend_schema(tags=["detection"], parameters=[WORKSPACE_PARAMETER])
class DetectionObjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Boxes on training images: ``data`` = [xmin, ymin, xmax, ymax] in the stored image's pixels."""

    serializer_class = DetectionObjectSerializer
    filterset_class = DetectionObjectFilter

    def _workspaces(self):
        # The client never names a workspace on object calls, so by default an object is looked
        # up among all the caller's workspaces; naming one (the base class resolved it, 404 for a
        # non-member) narrows the search to it.
        named = self.request.query_params.get("workspace")
        if not named and self.request.method not in ("GET", "HEAD", "OPTIONS", "DELETE"):
            named = self.request.data.get("workspace") if hasattr(self.request.data, "get") else None
        # A scoped token is bound to its workspace (self.workspace): never the owner's others.
        if (named and str(named).strip().lower() != DEFAULT_WORKSPACE_ALIAS) or bound_workspace(self.request):
            return [self.workspace]
        return workspace_list_for_user(user=self.request.user)

    def get_workspace_queryset(self, workspace):
        return selectors.detection_object_list(workspaces=[] if workspace is None else [workspace])

    def get_queryset(self):
        # Overrides the base's single-workspace scope with the caller's workspaces (see _workspaces).
        if getattr(self, "swagger_fake_view", False):
            return self.get_workspace_queryset(None)
        return selectors.detection_object_list(workspaces=self._workspaces())

    def _answer(self, obj, code=status.HTTP_200_OK) -> Response:
        obj = self.get_queryset().get(pk=obj.pk)
        return Response(
            DetectionObjectSerializer(obj, context=self.get_serializer_context()).data, status=code
        )

    def _image_and_label(self, data: dict, workspace):
        image = selectors.image_get(workspace=workspace, image_id=data["image"]) if "image" in data else None
        home = image.workspace if image is not None else workspace
        label = (
            selectors.detection_label_get(workspace=home, label_id=data["detection_label"])
            if "detection_label" in data
            else None
        )
        return image, label

    @extend_schema(
        summary="Draw a box of a detection label on a training image",
        request=DetectionObjectInputSerializer,
        responses={201: DetectionObjectSerializer, **ERRORS},
    )
    def create(self, request):
        data = _valid(DetectionObjectInputSerializer, request)
        # The image decides the workspace: found among the caller's workspaces (or the named one).
        image = selectors.image_get_among(workspaces=self._workspaces(), image_id=data["image"])
        label = selectors.detection_label_get(workspace=image.workspace, label_id=data["detection_label"])
        obj = services.detection_object_create(
            label=label, image=image, data=data["data"], meta_data=data.get("meta_data")
        )
        return self._answer(obj, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an object's label, box, image or meta data",
        request=DetectionObjectUpdateSerializer,
        responses={200: DetectionObjectSerializer, **ERRORS},
    )
    def update(self, request, pk=None):
        obj = self.get_object()
        data = _valid(DetectionObjectUpdateSerializer, request, partial=True)
        image, label = self._image_and_label(data, obj.workspace)
        obj = services.detection_object_update(
            obj=obj,
            label=label,
            image=image if image is not None and image.pk != obj.image_id else None,
            data=data.get("data"),
            meta_data=data.get("meta_data"),
            set_meta_data="meta_data" in data,
        )
        return self._answer(obj)

    @extend_schema(
        summary="Change an object",
        request=DetectionObjectUpdateSerializer,
        responses={200: DetectionObjectSerializer, **ERRORS},
    )
    def partial_update(self, request, pk=None):
        return self.update(request, pk)

    @extend_schema(summary="Delete an object", responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        services.detection_object_delete(obj=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _label_call(self, request, **kwargs) -> Response:
        obj = self.get_object()
        data = _valid(ObjectLabelValueSerializer, request)
        label = selectors.recognition_label_get(workspace=obj.workspace, label_id=data["label_id"])
        if kwargs.pop("remove", False):
            services.detection_object_label_remove(obj=obj, label=label)
        else:
            services.detection_object_label_set(obj=obj, label=label, value=data["value"], **kwargs)
        return self._answer(obj)

    @extend_schema(
        summary="Put a recognition label (and value) on the object",
        request=ObjectLabelValueSerializer,
        responses={200: DetectionObjectSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="add-label")
    def add_label(self, request, pk=None):
        return self._label_call(request)

    @extend_schema(
        summary="Change the value of a recognition label on the object",
        request=ObjectLabelValueSerializer,
        responses={200: DetectionObjectSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="update-label")
    def update_label(self, request, pk=None):
        return self._label_call(request, must_exist=True)

    @extend_schema(
        summary="Take a recognition label off the object",
        request=DetectionLabelIdSerializer,
        responses={200: DetectionObjectSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="remove-label")
    def remove_label(self, request, pk=None):
        return self._label_call(request, remove=True)
