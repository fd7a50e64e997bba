"""Reads for training images: one query for the page, one for all of its labels."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.workspaces.models import Workspace

from .models import ImageLabel, TrainingImage


def image_labels_queryset() -> QuerySet:
    return ImageLabel.objects.select_related("label").order_by("label__name", "label_id")


def training_image_list(*, workspace: Workspace | None) -> QuerySet:
    """The workspace's images, newest first, with their labels prefetched (constant queries)."""
    queryset = (
        TrainingImage.objects.all()
        if workspace is None
        else TrainingImage.objects.filter(workspace=workspace)
    )
    return queryset.prefetch_related(Prefetch("image_labels", queryset=image_labels_queryset()))


def training_image_get(*, workspace: Workspace, image_id) -> TrainingImage | None:
    return training_image_list(workspace=workspace).filter(pk=image_id).first()
