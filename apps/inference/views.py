"""Endpoints: ``POST classify/`` (Ximilar / Vize v2), ``POST detect/`` (Ximilar detection) and
``POST /v1/classify/`` (Vize v1): one prediction service for every kind of task."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.parsers import FormParser
from rest_framework.response import Response

from apps.core.errors import NotFoundError
from apps.core.parsers import JSONParser, MultiPartParser
from apps.images.decoding import check_size
from apps.images.errors import MSG_TOO_LARGE
from apps.quotas.schema import QUOTA_EXCEEDED
from apps.tasks.models import Task
from apps.tasks.selectors import MSG_TASK_NOT_FOUND
from apps.workspaces.tenancy import WorkspaceScopedViewSet

from .serializers import (
    ClassifyRequestSerializer,
    ClassifyResponseSerializer,
    DetectRequestSerializer,
    DetectResponseSerializer,
    V1ClassifyRequestSerializer,
    V1ClassifyResponseSerializer,
)
from .services import task_classify_v1, task_predict

ERRORS = {
    400: OpenApiResponse(
        description=(
            'Refused with `{"detail": "..."}`: 0 or more than 10 records, a task without a trained '
            "version, a `version` that is not TRAINED; or DRF's `{field: [msg]}` for a malformed body"
        )
    ),
    401: OpenApiResponse(description="No or invalid token"),
    404: OpenApiResponse(description="No such task in this workspace (or not a member of the workspace)"),
    413: OpenApiResponse(
        description='The body is over the size limit: `{"detail": "Request body is too large."}`'
    ),
}

EXAMPLE_REQUEST = OpenApiExample(
    "Two records",
    request_only=True,
    value={
        "task_id": "0a8c8186-aee8-47c8-9eaf-348103feb14d",
        "version": 2,
        "records": [{"_url": "https://example.com/dog.jpg", "_id": "a"}, {"_base64": "/9j/4AAQSkZJRg..."}],
    },
)


class _PredictBase(WorkspaceScopedViewSet):
    """A task of the caller's workspace and its records, through ``task_predict``."""

    parser_classes = [JSONParser, FormParser, MultiPartParser]
    access_kind = "predict"  # classify-only scoped tokens call these (apps/tokens/scopes.py)
    upload_too_large_message = MSG_TOO_LARGE  # v1's image_file: one image, VF_MAX_IMAGE_BYTES
    threshold_field = "threshold"  # the body field that is the kind's cut-off

    def get_workspace_queryset(self, workspace):
        return Task.objects.select_related("workspace")

    def task(self, task_id) -> Task:
        task = self.get_queryset().filter(pk=task_id).first()
        if task is None:
            raise NotFoundError(MSG_TASK_NOT_FOUND)
        return task

    def predict(self, request) -> Response:
        serializer = self.serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = task_predict(
            task=self.task(data["task_id"]),
            records=data["records"],
            version=data.get("version"),
            threshold=data.get(self.threshold_field),
            descriptor=data.get("descriptor", False),
            store_images=data["store_images"],
        )
        return Response(result)


class ClassifyViewSet(_PredictBase):
    serializer_class = ClassifyRequestSerializer

    @extend_schema(
        tags=["classify"],
        summary="Classify images",
        description=(
            "Run 1 to 10 records (`_url` or `_base64`) through a TRAINED model version of the task "
            "(`version`, default the production version) in one batch. A record that cannot be read "
            "gets `_status` 400 with the reason and the others are still classified. multi_class: "
            "`best_label` and `labels` by `prob` descending; multi_label: also `best_labels` (labels over "
            "their trained threshold); regression: `value` instead of `prob`. `threshold` drops labels "
            "under it from `labels`; `descriptor` adds `_descriptor`; `store_images` stores each record "
            "as a training image and adds `_stored_image_id`."
        ),
        request=ClassifyRequestSerializer,
        responses={200: ClassifyResponseSerializer, **ERRORS, **QUOTA_EXCEEDED},  # store_images
        examples=[EXAMPLE_REQUEST],
    )
    def create(self, request):
        return self.predict(request)


class DetectViewSet(_PredictBase):
    serializer_class = DetectRequestSerializer
    threshold_field = "keep_prob"

    def get_workspace_queryset(self, workspace):
        return Task.objects.filter(type=Task.Type.DETECTION).select_related("workspace")

    @extend_schema(
        tags=["detection"],
        summary="Detect objects",
        description=(
            "Run 1 to 10 records (`_url` or `_base64`) through a TRAINED version of a detection task "
            "(`version`, default the production version) in one forward pass. Each record gets "
            "`_objects`: `name`, `id`, `bound_box` ([xmin, ymin, xmax, ymax] in pixels of the image as "
            "sent) and `prob`, for objects with `prob >= keep_prob` (default 0.3). A record that cannot "
            "be read gets `_status` 400 and the others are still answered."
        ),
        request=DetectRequestSerializer,
        responses={200: DetectResponseSerializer, **ERRORS, **QUOTA_EXCEEDED},  # store_images
    )
    def create(self, request):
        return self.predict(request)


class V1ClassifyViewSet(_PredictBase):
    serializer_class = V1ClassifyRequestSerializer

    @extend_schema(
        tags=["classify"],
        summary="Classify one image (Vize v1)",
        description=(
            "The Vize v1 endpoint: multipart `image_file` (or `image_url` / `image_base64`) and `task`. "
            "Answers `best_label` and `labels` for the image; an unreadable image is a 400."
        ),
        request={
            "multipart/form-data": V1ClassifyRequestSerializer,
            "application/x-www-form-urlencoded": V1ClassifyRequestSerializer,
            "application/json": V1ClassifyRequestSerializer,
        },
        responses={200: V1ClassifyResponseSerializer, **ERRORS},
    )
    def create(self, request):
        serializer = V1ClassifyRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data.get("image_file") or request.FILES.get("image")
        content = None
        if upload is not None:
            check_size(upload.size or 0)  # refuse before reading a huge upload into memory
            content = upload.read()
        result = task_classify_v1(
            task=self.task(data["task_id"]),
            data=content,
            url=data.get("image_url"),
            base64=data.get("image_base64"),
            version=data.get("version"),
        )
        return Response(result)
