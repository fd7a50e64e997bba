"""Reads for training images: one query for the page, one for all of its labels; counts from the
counters the database keeps (migrations 0004 here and labels' 0003), never from counting rows."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, QuerySet

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


# ImageHour's and ImageMinute's tables (migrations 0005 and 0006 name them in their triggers too);
# the values are parameters. The hour that holds the row comes first (a running sum over a few
# thousand hours at most), then its minute among that hour's sixty. The counts are summed as
# integers (an hour never holds 2**31 images): the sum of a bigint column is a numeric, whose
# arithmetic took half of the time of a running sum over 4,000 minutes.
SEEK_SQL = """
WITH h AS (
    SELECT hour, running - images AS newer FROM (
        SELECT hour, images,
            sum(images::integer) OVER (ORDER BY hour DESC ROWS UNBOUNDED PRECEDING) AS running
        FROM images_imagehour WHERE workspace_id = %(workspace)s
    ) AS x WHERE running > %(offset)s ORDER BY hour DESC LIMIT 1
)
SELECT m.minute, h.newer + m.running - m.images FROM h CROSS JOIN LATERAL (
    SELECT minute, images,
        sum(images::integer) OVER (ORDER BY minute DESC ROWS UNBOUNDED PRECEDING) AS running
    FROM images_imageminute
    WHERE workspace_id = %(workspace)s AND minute >= h.hour AND minute < h.hour + interval '1 hour'
) AS m WHERE h.newer + m.running > %(offset)s ORDER BY m.minute DESC LIMIT 1
"""


def training_image_seek(*, workspace: Workspace, offset: int) -> tuple[datetime, int] | None:
    """Where the row at ``offset`` of the workspace's unfiltered list (newest first) sits:
    ``(bound, newer)``, the end of the minute that holds it and how many images are newer than
    that minute, so the row is number ``offset - newer`` of the images created before ``bound``.

    One query over the kept counts: per hour (``ImageHour``), newest first, up to the hour where
    the running sum passes ``offset``, then that hour's minutes (``ImageMinute``) the same way.
    None on SQLite (no counts kept) or past the last image.
    """
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(SEEK_SQL, {"workspace": workspace.pk, "offset": offset})
        row = cursor.fetchone()
    if row is None:
        return None
    minute, newer = row
    return minute + timedelta(minutes=1), int(newer)
