"""The labelling loop's endpoints, on a task of either API (``task/{id}/...`` of the recognition
API, ``detection/v2/task/{id}/...`` of the detection API):

- ``GET suggestions/``: the next images to label, most useful first, with the model's guess;
- ``POST suggestions/refresh/``: score the pool again now (in the background; progress in ``run``);
- ``POST pool/``: upload an image into the task's pool (``GET training-image/?pool=<id>`` lists it);
- ``GET prelabel/?image=<id>``: the deployed model's guess for one image, stored nowhere;
- ``POST prelabel/``: accept the guess, or store a correction, as real labels or boxes.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser
from rest_framework.response import Response

from apps.core.parsers import JSONParser, MultiPartParser
from apps.detection import selectors as detection_selectors
from apps.images import selectors as image_selectors
from apps.images import services as image_services
from apps.images.decoding import max_image_bytes
from apps.images.errors import MSG_IMAGE_NOT_FOUND, MSG_TOO_LARGE
from apps.images.serializers import TrainingImageSerializer
from apps.quotas.schema import QUOTA_EXCEEDED
from apps.tasks import selectors as task_selectors
from apps.workspaces.tenancy import WORKSPACE_PARAMETER, WorkspaceScopedViewSet

from . import selectors, services
from .serializers import (
    PoolUploadSerializer,
    PrelabelAcceptedSerializer,
    PrelabelAcceptSerializer,
    PrelabelQuerySerializer,
    PrelabelSerializer,
    SuggestionListSerializer,
    SuggestionQuerySerializer,
    SuggestionRunSerializer,
)

ERRORS = {
    400: OpenApiResponse(description='Refused, with `{"detail": "..."}` or `{field: [messages]}` saying why'),
    401: OpenApiResponse(description="No or invalid token"),
    404: OpenApiResponse(description="No such task or image in the workspace (or not a member of it)"),
}


NOTHING_DEPLOYED = OpenApiResponse(
    description="The task has no deployed version to score with, or is a regression task"
)


def _valid(serializer_class, data):
    body = serializer_class(data=data)
    body.is_valid(raise_exception=True)
    return body.validated_data


class SuggestionsViewSet(WorkspaceScopedViewSet):
    """Suggestions, pool uploads and pre-labels of the workspace's tasks."""

    serializer_class = SuggestionListSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    upload_too_large_message = MSG_TOO_LARGE

    def upload_part_limit(self) -> int:
        return max_image_bytes()

    def _image(self, image_id):
        image = image_selectors.training_image_get(workspace=self.workspace, image_id=image_id)
        if image is None:
            raise NotFound(MSG_IMAGE_NOT_FOUND)
        return image

    @extend_schema(
        tags=["suggestions"],
        summary="The next images to label",
        description="The task's pool ranked by the latest scoring: the images the deployed model is "
        "least sure of, kept apart so that near-copies do not crowd the top. Each comes with the model's "
        "guess (labels with probabilities, or boxes). Images labelled since the scoring are left out; "
        "`skip` leaves out more. `run` is the latest scoring (its `progress` while it runs).",
        parameters=[WORKSPACE_PARAMETER, SuggestionQuerySerializer],
        responses={200: SuggestionListSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def suggestions(self, request, pk=None):
        task = self.get_object()
        # A plain dict: DRF reads an empty value in a QueryDict as "absent", where the schema says
        # ``count=`` is not a number.
        query = _valid(SuggestionQuerySerializer, request.query_params.dict())
        run, rows = selectors.suggestion_list(task=task, count=query["count"], skip=query["skip"])
        latest = selectors.suggestion_run_latest(task=task)
        body = {"task_id": task.pk, "run": latest, "version": run.version if run else None, "results": rows}
        return Response(SuggestionListSerializer(body, context=self.get_serializer_context()).data)

    @extend_schema(
        tags=["suggestions"],
        summary="Score the pool again",
        description="Queue a scoring of the task's pool by its deployed version (it also runs after each "
        "training that deploys a version). While one is queued or running, that one is answered. 400 for "
        "a task with nothing deployed or a regression task; 503 when the job queue is unreachable.",
        parameters=[WORKSPACE_PARAMETER],
        request=None,
        responses={
            202: SuggestionRunSerializer,
            **ERRORS,
            409: NOTHING_DEPLOYED,
            503: OpenApiResponse(description="Queue down"),
        },
    )
    @action(detail=True, methods=["post"], url_path="suggestions/refresh")
    def refresh(self, request, pk=None):
        run = services.suggestion_run_start(task=self.get_object())
        return Response(SuggestionRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        tags=["suggestions"],
        summary="Upload an image into the task's pool",
        description="Multipart `img_path`, or JSON `base64` / `url`, checked as `training-image/` uploads "
        "are. The image is in the task's pool until it carries one of the task's labels.",
        parameters=[WORKSPACE_PARAMETER],
        request={"multipart/form-data": PoolUploadSerializer, "application/json": PoolUploadSerializer},
        responses={
            201: TrainingImageSerializer,
            **ERRORS,
            413: OpenApiResponse(description="Too large"),
            **QUOTA_EXCEEDED,
        },
    )
    @action(detail=True, methods=["post"])
    def pool(self, request, pk=None):
        task = self.get_object()
        data = _valid(PoolUploadSerializer, request.data)
        raw = image_services.upload_bytes(
            file=data.get("img_path"), base64=data.get("base64"), url=data.get("url")
        )
        image = services.pool_image_upload(task=task, data=raw, test_image=data["test_image"])
        image = image_selectors.training_image_get(workspace=self.workspace, image_id=image.pk)
        return Response(
            TrainingImageSerializer(image, context=self.get_serializer_context()).data, status=201
        )

    @extend_schema(
        tags=["suggestions"],
        methods=["GET"],
        summary="The deployed model's guess for an image",
        description="Nothing is stored. 400 when the task has no deployed version.",
        parameters=[WORKSPACE_PARAMETER, PrelabelQuerySerializer],
        responses={200: PrelabelSerializer, **ERRORS},
    )
    @extend_schema(
        tags=["suggestions"],
        methods=["POST"],
        summary="Accept the guess, or store a correction",
        description="With only `image_id`, the deployed model's guess is stored as the image's labels "
        "(multi_class: the best label; multi_label: the labels over their thresholds) or boxes (detection); "
        "with `labels` (or `objects`) those are stored instead, through the services of manual labelling. "
        "A multi_class image's label of the task is replaced; an empty `objects` marks a detection image as "
        "negative. Validated first: a label of another task is a 400 and nothing is stored.",
        parameters=[WORKSPACE_PARAMETER],
        request=PrelabelAcceptSerializer,
        responses={200: PrelabelAcceptedSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get", "post"])
    def prelabel(self, request, pk=None):
        task = self.get_object()
        if request.method == "GET":
            image = self._image(_valid(PrelabelQuerySerializer, request.query_params.dict())["image"])
            guess = services.prelabel_guess(task=task, image=image)
            version = guess.pop("version")
            return Response(
                PrelabelSerializer({"image_id": image.pk, "version": version, "guess": guess}).data
            )
        data = _valid(PrelabelAcceptSerializer, request.data)
        image = self._image(data["image_id"])
        stored = services.prelabel_accept(
            task=task, image=image, label_ids=data.get("labels"), objects=data.get("objects")
        )
        return Response(PrelabelAcceptedSerializer(stored).data)


class RecognitionSuggestionsViewSet(SuggestionsViewSet):
    """On ``task/{id}/``: the workspace's recognition tasks."""

    def get_workspace_queryset(self, workspace):
        return task_selectors.task_list(workspace=workspace)


class DetectionSuggestionsViewSet(SuggestionsViewSet):
    """On ``detection/v2/task/{id}/``: the workspace's detection tasks."""

    def get_workspace_queryset(self, workspace):
        return detection_selectors.detection_task_list(workspace=workspace)
