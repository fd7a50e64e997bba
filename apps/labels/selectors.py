"""Reads for labels: a list costs the same queries for 1 or 500 rows and for 1 or 10^6 images.

``images_count`` is a column the database keeps (migration 0003); ``tasks_count`` (a few links per
label) is a subquery.
"""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from apps.core.errors import NotFoundError
from apps.core.ids import parse_uuid
from apps.images.errors import MSG_LABEL_NOT_FOUND

from .models import Label

__all__ = ["MSG_LABEL_NOT_FOUND", "label_annotate_counts", "label_list"]


def _count_of(queryset: QuerySet, group_field: str) -> Coalesce:
    """``COUNT(*)`` of ``queryset`` rows per outer label, as a correlated subquery (0 when none)."""
    counted = queryset.order_by().values(group_field).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def label_annotate_counts(queryset: QuerySet) -> QuerySet:
    """Add ``tasks_count`` to a label queryset (``images_count`` is a kept column)."""
    task_links = Label.tasks.through.objects.filter(label_id=OuterRef("pk"))
    return queryset.annotate(tasks_count=_count_of(task_links, "label_id"))


def label_list(*, workspace) -> QuerySet:
    """The workspace's labels with their counts, oldest first."""
    return label_annotate_counts(Label.objects.filter(workspace=workspace)).order_by("created", "id")


def label_get(*, workspace, label_id) -> Label:
    """One label of the workspace with its counts; NotFoundError for a bad id or another workspace's."""
    label_uuid = parse_uuid(label_id)
    label = label_list(workspace=workspace).filter(pk=label_uuid).first() if label_uuid else None
    if label is None:
        raise NotFoundError(MSG_LABEL_NOT_FOUND)
    return label
