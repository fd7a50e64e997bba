"""Training-image endpoints and the token-free view that serves signed media URLs."""

from __future__ import annotations

import mimetypes

from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.ids import parse_uuid
from apps.core.pagination import KeysetPagination
from apps.core.parsers import JSONParser, MultiPartParser
from apps.quotas.schema import QUOTA_EXCEEDED
from apps.workspaces.tenancy import WORKSPACE_PARAMETER, WorkspaceScopedViewSet

from . import selectors, services, storage
from .decoding import max_image_bytes
from .errors import MSG_TOO_LARGE
from .filters import TrainingImageFilter
from .models import TrainingImage
from .serializers import (
    BulkUpdateResultSerializer,
    BulkUpdateSerializer,
    ImageLabelIdSerializer,
    ImageLabelRequiredValueSerializer,
    ImageLabelValueSerializer,
    TrainingImageSerializer,
    TrainingImageUpdateSerializer,
    TrainingImageUploadedSerializer,
    TrainingImageUploadSerializer,
    ZipImportResultSerializer,
    ZipImportSerializer,
)
from .signals import upload_checks

MSG_LINK_INVALID = "This link is invalid or has expired."


def upload_warnings(*, image, data: bytes) -> list[dict]:
    """What the receivers of ``upload_checks`` warn about an upload (apps/images/signals.py)."""
    found = []
    for _, answer in upload_checks.send(sender=TrainingImage, image=image, data=data):
        found.extend(answer or [])
    return found


# A well-formed request that the label it names refuses (apps/images/services.py, _check_value).
VALUE_CONFLICT = {
    409: OpenApiResponse(description="A value label without a value, or a value for a label that takes none")
}
ERRORS = {
    400: OpenApiResponse(description="Invalid input; `{detail}` or `{field: [messages]}`"),
    401: OpenApiResponse(description="No or invalid token"),
    404: OpenApiResponse(description="No such image or label in the workspace, or not a member of it"),
}
UPLOAD_ERRORS = {
    **ERRORS,
    413: OpenApiResponse(description="Image or request body larger than the limit"),
    503: OpenApiResponse(
        description="The database or the media storage is unavailable (Retry-After); nothing was stored"
    ),
    507: OpenApiResponse(description="The media storage is full; nothing was stored"),
}


@extend_schema_view(
    list=extend_schema(
        summary="List training images",
        description="Filters: `labels` (any of, comma-separated or repeated), `not_labels`, `test`, `real`, "
        "`task`, `unlabelled`, `verified`, `pool` (a task's unlabelled pool); "
        "`label_value_<label id>__gte` / `__lte` bound its value.",
        parameters=[WORKSPACE_PARAMETER],
        responses={
            200: TrainingImageSerializer(many=True),
            400: ERRORS[400],
            401: ERRORS[401],
            404: ERRORS[404],
        },
    ),
    retrieve=extend_schema(
        summary="Get a training image",
        parameters=[WORKSPACE_PARAMETER],
        responses={200: TrainingImageSerializer, **ERRORS, **VALUE_CONFLICT},
    ),
    destroy=extend_schema(
        summary="Delete a training image and its files",
        parameters=[WORKSPACE_PARAMETER],
        responses={204: None, 401: ERRORS[401], 404: ERRORS[404]},
    ),
)
class TrainingImageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WorkspaceScopedViewSet):
    """Training images of the workspace: upload, list, label, flag, delete."""

    serializer_class = TrainingImageSerializer
    filterset_class = TrainingImageFilter
    pagination_class = KeysetPagination
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    def get_workspace_queryset(self, workspace):
        return selectors.training_image_list(workspace=workspace)

    def _list_filters(self) -> set[str]:
        """The query parameters that narrow the list (not paging, format or workspace)."""
        return set(self.request.query_params) - KeysetPagination.not_filters - {"workspace"}

    def list_count(self, queryset) -> int | None:
        """The list's count from a counter when one answers it (KeysetPagination asks): no filter,
        or one label id only; None lets the paginator count the filtered rows."""
        params = self.request.query_params
        filters = self._list_filters()
        if not filters:
            return selectors.training_image_count(workspace=self.workspace)
        if len(filters) == 1 and filters <= {"labels", "label"}:
            values = params.getlist(next(iter(filters)))
            label_id = parse_uuid(values[0]) if len(values) == 1 and "," not in values[0] else None
            if label_id is not None:
                return selectors.training_image_count(workspace=self.workspace, label_id=label_id)
        return None

    def list_seek(self, offset: int):
        """Where a deep page of the unfiltered list starts (KeysetPagination asks):
        ``(created, id, newer)`` from the list's kept blocks of rows (apps/core/positions.py), or
        None (filters)."""
        if self._list_filters():
            return None
        return selectors.training_image_seek(workspace=self.workspace, offset=offset)

    upload_too_large_message = MSG_TOO_LARGE

    def upload_part_limit(self) -> int:
        """Largest file part a request may stream in (apps/core/parsers.py): an archive or an image."""
        return services.zip_limit() if self.action == "import_zip" else max_image_bytes()

    def _detail(self, image, status_code=status.HTTP_200_OK) -> Response:
        image = selectors.training_image_get(workspace=self.workspace, image_id=image.pk)
        return Response(self.get_serializer(image).data, status=status_code)

    @extend_schema(
        parameters=[WORKSPACE_PARAMETER],
        summary="Upload a training image",
        description="Multipart `img_path`, or JSON `base64` / `url`; optional labels, meta data and flags.",
        request={
            "multipart/form-data": TrainingImageUploadSerializer,
            "application/json": TrainingImageUploadSerializer,
        },
        responses={201: TrainingImageUploadedSerializer, **UPLOAD_ERRORS, **VALUE_CONFLICT, **QUOTA_EXCEEDED},
    )
    def create(self, request, *args, **kwargs):
        upload = TrainingImageUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        raw = services.upload_bytes(file=data.get("img_path"), base64=data.get("base64"), url=data.get("url"))
        image = services.training_image_ingest(
            workspace=self.workspace,
            data=raw,
            label_ids=data.get("labels", ()),
            meta_data=data.get("meta_data"),
            noresize=data["noresize"],
            test_image=data["test_image"],
            real=data["real"],
        )
        response = self._detail(image, status.HTTP_201_CREATED)
        warnings = upload_warnings(image=image, data=raw)
        if warnings:
            response.data["warnings"] = warnings
        return response

    @extend_schema(
        parameters=[WORKSPACE_PARAMETER],
        summary="Change meta data and flags",
        description="The fields given change, the others stay (PUT acts like PATCH, as the client expects).",
        request=TrainingImageUpdateSerializer,
        responses={200: TrainingImageSerializer, **ERRORS, **VALUE_CONFLICT},
    )
    def update(self, request, *args, **kwargs):
        image = self.get_object()
        changes = TrainingImageUpdateSerializer(data=request.data)
        changes.is_valid(raise_exception=True)
        fields = {k: v for k, v in changes.validated_data.items() if k != "workspace"}
        services.training_image_update(image=image, **fields)
        return self._detail(image)

    @extend_schema(
        parameters=[WORKSPACE_PARAMETER],
        summary="Change some meta data and flags",
        request=TrainingImageUpdateSerializer,
        responses={200: TrainingImageSerializer, **ERRORS, **VALUE_CONFLICT},
    )
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, **kwargs)

    def destroy(self, request, *args, **kwargs):
        services.training_image_delete(image=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[WORKSPACE_PARAMETER],
        summary="Attach a label",
        request=ImageLabelValueSerializer,
        responses={200: TrainingImageSerializer, **ERRORS, **VALUE_CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="add-label")
    def add_label(self, request, pk=None):
        image = self.get_object()
        body = ImageLabelValueSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.training_image_add_label(
            image=image, label_id=body.validated_data["label_id"], value=body.validated_data.get("value")
        )
        return self._detail(image)

    @extend_schema(
        parameters=[WORKSPACE_PARAMETER],
        summary="Detach a label",
        request=ImageLabelIdSerializer,
        responses={200: TrainingImageSerializer, **ERRORS, **VALUE_CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="remove-label")
    def remove_label(self, request, pk=None):
        image = self.get_object()
        body = ImageLabelIdSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.training_image_remove_label(image=image, label_id=body.validated_data["label_id"])
        return self._detail(image)

    @extend_schema(
        parameters=[WORKSPACE_PARAMETER],
        summary="Change the value of a value label",
        request=ImageLabelRequiredValueSerializer,
        responses={200: TrainingImageSerializer, **ERRORS, **VALUE_CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="update-label")
    def update_label(self, request, pk=None):
        image = self.get_object()
        body = ImageLabelRequiredValueSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.training_image_update_label(
            image=image, label_id=body.validated_data["label_id"], value=body.validated_data["value"]
        )
        return self._detail(image)

    @extend_schema(
        parameters=[WORKSPACE_PARAMETER],
        summary="Change the value of a value label (alias of update-label)",
        request=ImageLabelRequiredValueSerializer,
        responses={200: TrainingImageSerializer, **ERRORS, **VALUE_CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="update-value")
    def update_value(self, request, pk=None):
        return self.update_label(request, pk)

    @extend_schema(
        parameters=[WORKSPACE_PARAMETER],
        summary="Update many images",
        description="Select `images` (ids) and/or every image with one of `labels`; attach `labels-add`, "
        "detach `labels-remove`, set or clear the test/real flags.",
        request=BulkUpdateSerializer,
        responses={200: BulkUpdateResultSerializer, **ERRORS, **VALUE_CONFLICT},
    )
    @action(detail=False, methods=["post"], url_path="update")
    def bulk_update(self, request):
        body = BulkUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        count = services.training_image_bulk_update(
            workspace=self.workspace,
            image_ids=data.get("images", ()),
            label_ids=data.get("labels", ()),
            add_label_ids=data.get("labels-add", ()),
            remove_label_ids=data.get("labels-remove", ()),
            test_image=True if data["mark-test"] else (False if data["unmark-test"] else None),
            real=True if data["mark-real"] else (False if data["unmark-real"] else None),
        )
        return Response({"count": count})

    @extend_schema(
        parameters=[WORKSPACE_PARAMETER],
        summary="Import a zip archive of images",
        description="One archive per label: every image gets `labels`. Unreadable files and duplicates "
        "are skipped and listed; the others are stored.",
        request={"multipart/form-data": ZipImportSerializer},
        responses={201: ZipImportResultSerializer, **UPLOAD_ERRORS, **QUOTA_EXCEEDED},
    )
    @action(detail=False, methods=["post"], url_path="import-zip")
    def import_zip(self, request):
        body = ZipImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        images, skipped = services.training_image_import_zip(
            workspace=self.workspace,
            file=data["zip"],
            label_ids=data.get("labels", ()),
            test_image=data["test_image"],
            real=data["real"],
        )
        stored = self.get_queryset().filter(pk__in=[image.pk for image in images])
        result = {"images": self.get_serializer(stored, many=True).data, "skipped": skipped}
        return Response(result, status=status.HTTP_201_CREATED)


@extend_schema(exclude=True)
class MediaFileView(APIView):
    """Serves a stored file for a signed, unexpired link; no token (the client's download sends none).

    The signature covers the storage name, so a file is reachable only through a link the API
    handed out, never by guessing names or image ids.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get(self, request, name: str):
        if not storage.verify(name, request.query_params.get(storage.SIGNATURE_PARAM, "")):
            raise exceptions.PermissionDenied(MSG_LINK_INVALID)
        if not default_storage.exists(name):
            raise exceptions.NotFound()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
        response["Cache-Control"] = "private, max-age=3600"
        return response
