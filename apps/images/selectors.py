"""Reads for training images: one query for the page, one for all of its labels; counts from the
counters the database keeps (migrations 0004 here and labels' 0003), never from counting rows; a
deep page's start from the list's blocks (core's migration 0001)."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from apps.core.models import ListBlock
from apps.workspaces.models import Workspace

from .models import ImageCount, ImageLabel, TrainingImage

# The attribute the list's prefetch puts each image's label links in (ordered by label name): a
# plain list. Prefetching into the ``image_labels`` manager instead built one filtered queryset per
# image to hold its cache, about a third of a 100-image page's prefetch.
LABEL_LINKS = "label_links"


def image_labels_queryset() -> QuerySet:
    return ImageLabel.objects.select_related("label").order_by("label__name", "label_id")


def training_image_list(*, workspace: Workspace | None) -> QuerySet:
    """The workspace's images, newest first, with their label links prefetched into ``LABEL_LINKS``
    (constant queries; ``training_image_label_links`` reads them)."""
    queryset = (
        TrainingImage.objects.all()
        if workspace is None
        else TrainingImage.objects.filter(workspace=workspace)
    )
    return queryset.prefetch_related(
        Prefetch("image_labels", queryset=image_labels_queryset(), to_attr=LABEL_LINKS)
    )


def training_image_label_links(image: TrainingImage) -> list[ImageLabel]:
    """The image's label links with their labels: from ``training_image_list``'s prefetch, else
    read now (an image that did not come through it)."""
    links = getattr(image, LABEL_LINKS, None)
    return list(image_labels_queryset().filter(image=image)) if links is None else links


def training_image_pool(queryset: QuerySet, *, task_id) -> QuerySet:
    """The images of ``queryset`` in the pool of task ``task_id``: none of the task's labels (image
    labels, boxes of its detection labels, marked negative for it), and either uploaded to the task
    (apps/suggestions' ``PoolImage``) or carrying no label and no box at all. Only when the task
    is in the images' workspace.

    Through the reverse relations of tasks, detection and suggestions, by name: images stay below
    those apps in the layers. Each condition is one ``EXISTS`` per row, so a page stays one query.
    """
    image = TrainingImage.objects.filter(pk=OuterRef("pk"))
    of_task = Exists(ImageLabel.objects.filter(image=OuterRef("pk"), label__tasks__id=task_id))
    boxed = Exists(image.filter(detection_objects__detection_label__tasks__id=task_id))
    negative = Exists(image.filter(negative_for_tasks__task_id=task_id))
    tagged = Exists(image.filter(pool_entries__task_id=task_id))
    any_label = Exists(ImageLabel.objects.filter(image=OuterRef("pk")))
    any_box = Exists(image.filter(detection_objects__isnull=False))
    return (
        queryset.filter(workspace__tasks__id=task_id)
        .exclude(of_task)
        .exclude(boxed)
        .exclude(negative)
        .filter(tagged | (~any_label & ~any_box))
    )


def training_image_get(*, workspace: Workspace, image_id) -> TrainingImage | None:
    return training_image_list(workspace=workspace).filter(pk=image_id).first()


def training_image_count(*, workspace: Workspace, label_id=None) -> int:
    """How many images the workspace holds, or, with ``label_id``, carry that label of it (one
    indexed row either way; 0 for a label of another workspace)."""
    if label_id is None:
        counts = ImageCount.objects.filter(workspace=workspace)
        return counts.values_list("images", flat=True).first() or 0
    # Label is reached through the image-label link: the labels app sits above images.
    label_model = ImageLabel._meta.get_field("label").related_model
    counts = label_model.objects.filter(workspace=workspace, pk=label_id)
    return counts.values_list("images_count", flat=True).first() or 0


# The block whose rows span the offset: a running sum of the sizes in list order, read from the
# index that holds that order (ListBlock's "list_block_order"). Sizes are positive, so the sums
# rise and one block matches: no sort. Raw SQL because the ORM's window filter computes the sum
# twice (one window per condition), half of the query's time at a thousand blocks. Summed as
# integers (a block holds fewer than 2,000 rows): PostgreSQL's sum of a bigint is a numeric.
SEEK_SQL = """
SELECT id, created, first_id, running - size AS newer FROM (
    SELECT id, created, first_id, size,
        sum(CAST(size AS integer)) OVER (ORDER BY created DESC, first_id ROWS UNBOUNDED PRECEDING) AS running
    FROM core_listblock WHERE source = %s AND scope = %s
) AS x WHERE running > %s AND running - size <= %s LIMIT 1
"""


def training_image_seek(*, workspace: Workspace, offset: int) -> tuple[datetime, uuid.UUID, int] | None:
    """Where the row at ``offset`` of the workspace's unfiltered list (newest first) sits:
    ``(created, first_id, newer)``, the sort key of the first row of the block of rows that holds
    it (apps/core/positions.py) and how many images come before that block, so the row is number
    ``offset - newer`` from that key on (fewer than two blocks' worth of rows).

    One query over the workspace's blocks (a thousand per million images). None past the last image.
    """
    scope = ListBlock._meta.get_field("scope").get_db_prep_value(workspace.pk, connection)
    params = [TrainingImage._meta.db_table, scope, offset, offset]
    found = list(ListBlock.objects.raw(SEEK_SQL, params))
    if not found:
        return None
    return found[0].created, found[0].first_id, int(found[0].newer)
