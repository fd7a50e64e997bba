"""Reads for the console's pages, composed from the apps' own selectors.

Every function takes the current workspace (apps/console/tenancy.py) or an object already read
through it, and every page costs a constant number of queries however many images a task has:
counts are subqueries, labels come in one prefetch, the image grid is one page of one query.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery

from apps.core.errors import NotFoundError
from apps.detection import selectors as detection_selectors
from apps.detection.models import DetectionLabel, DetectionObject
from apps.images import selectors as image_selectors
from apps.images.errors import MSG_IMAGE_NOT_FOUND
from apps.images.models import ImageCount, ImageLabel, TrainingImage
from apps.images.storage import signed_link
from apps.labels import selectors as label_selectors
from apps.quotas import selectors as quota_selectors
from apps.quotas.models import StoredBytes
from apps.tasks import selectors as task_selectors
from apps.tasks.models import Task
from apps.training import selectors as training_selectors
from apps.training.models import ModelVersion
from apps.workspaces.models import Workspace

MSG_VERSION_NOT_FOUND = "Model version not found."
EVALUATION_SHOWN = 48  # evaluation images on a version page, wrong ones first


def task_lists(*, workspace) -> dict[str, QuerySet]:
    """The workspace's recognition and detection tasks (each with its labels prefetched)."""
    return {
        "recognition": task_selectors.task_list(workspace=workspace),
        "detection": detection_selectors.detection_task_list(workspace=workspace),
    }


# The quotas as the task list shows them: (name, what is counted, counted in bytes).
QUOTA_ROWS = (
    ("images", "Training images", False),
    ("stored_bytes", "Storage", True),
    ("versions", "Model versions kept", False),
    ("queued_trainings", "Trainings queued or running", False),
)


def _counted(queryset: QuerySet) -> Subquery:
    return Subquery(queryset.order_by().values("workspace").annotate(n=Count("pk")).values("n")[:1])


def workspace_quotas(*, workspace) -> list[dict]:
    """Use against each quota of the workspace (``limit`` None: unlimited), read from the kept
    counters: two queries, however many images."""
    limits = quota_selectors.quota_limits(workspace_id=workspace.pk)
    versions = ModelVersion.objects.filter(workspace=OuterRef("pk"))
    use = (
        Workspace.objects.filter(pk=workspace.pk)
        .annotate(
            used_images=Subquery(ImageCount.objects.filter(workspace=OuterRef("pk")).values("images")[:1]),
            used_stored_bytes=Subquery(
                StoredBytes.objects.filter(workspace=OuterRef("pk")).values("bytes")[:1]
            ),
            used_versions=_counted(versions),
            used_queued_trainings=_counted(versions.filter(train_status__in=("QUEUED", "IN_TRAINING"))),
        )
        .values("used_images", "used_stored_bytes", "used_versions", "used_queued_trainings")
        .first()
    ) or {}
    rows = []
    for name, title, in_bytes in QUOTA_ROWS:
        used, limit = use.get(f"used_{name}") or 0, limits[name]
        share = used / limit if limit else (1.0 if limit == 0 else None)
        rows.append(
            {"name": name, "title": title, "in_bytes": in_bytes, "used": used, "limit": limit, "share": share}
        )
    return rows


def task_get(*, workspace, task_id) -> Task:
    """A task of the workspace of any type (NotFoundError for another workspace's)."""
    try:
        return task_selectors.task_get(workspace=workspace, task_id=task_id)
    except NotFoundError:
        return detection_selectors.detection_task_get(workspace=workspace, task_id=task_id)


def task_labels(*, task: Task) -> list:
    """The task's labels in a stable order, each with ``images_count`` (detection: ``objects_count``)."""
    if task.type == Task.Type.DETECTION:
        return list(
            DetectionLabel.objects.filter(tasks=task)
            .annotate(objects_count=Count("detection_objects"))
            .order_by("created", "id")
        )
    return list(label_selectors.label_list(workspace=task.workspace_id).filter(tasks=task))


def task_versions(*, task: Task) -> list[ModelVersion]:
    """The task's versions, newest first, ``is_production`` annotated."""
    return list(training_selectors.model_version_list(workspace=task.workspace_id).filter(task=task))


def version_get(*, task: Task, version: int) -> ModelVersion:
    found = training_selectors.model_version_list(workspace=task.workspace_id).filter(
        task=task, version=version
    )
    found = found.first()
    if found is None:
        raise NotFoundError(MSG_VERSION_NOT_FOUND)
    return found


@dataclass
class ImageFilter:
    label: str | None = None  # a label (detection: a detection label) id of the task
    test: bool | None = None
    unlabelled: bool = False
    pool: bool = False  # the task's pool: none of its labels, uploaded to it or unlabelled


def _task_images(task: Task, labels: list, chosen: ImageFilter) -> QuerySet:
    images = image_selectors.training_image_list(workspace=task.workspace_id)
    if chosen.pool:
        images = image_selectors.training_image_pool(images, task_id=task.pk)
        if task.type == Task.Type.DETECTION:
            images = images.annotate(boxes_count=Count("detection_objects"))
    elif task.type == Task.Type.DETECTION:
        boxes = DetectionObject.objects.filter(image=OuterRef("pk"))
        labelled = Exists(ImageLabel.objects.filter(image=OuterRef("pk")))
        if chosen.unlabelled:
            images = images.filter(~Exists(boxes), ~labelled)
        elif chosen.label:
            images = images.filter(Exists(boxes.filter(detection_label_id=chosen.label)))
        else:
            images = images.filter(Q(Exists(boxes.filter(detection_label__in=labels))) | ~labelled)
        images = images.annotate(boxes_count=Count("detection_objects"))
    else:
        links = ImageLabel.objects.filter(image=OuterRef("pk"))
        if chosen.unlabelled:
            images = images.filter(~Exists(links))
        elif chosen.label:
            images = images.filter(Exists(links.filter(label_id=chosen.label)))
        else:
            images = images.filter(Exists(links.filter(label__in=labels)))
    if chosen.test is not None:
        images = images.filter(test_image=chosen.test)
    return images.order_by("-created", "id")


def image_page(*, task: Task, labels: list, chosen: ImageFilter, number: int) -> Page:
    """One page of the task's images (all its labels' images, or those of ``chosen``), newest first.

    Each image gets ``thumb_url`` (a signed link: no query). Two queries for the page and the
    count, one for the labels of the page's images."""
    paginator = Paginator(_task_images(task, labels, chosen), settings.VF_CONSOLE_PAGE_SIZE)
    page = paginator.get_page(number)
    for image in page.object_list:
        image.thumb_url = signed_link(image.thumbnail)
    return page


def image_get(*, workspace, image_id) -> TrainingImage:
    image = image_selectors.training_image_get(workspace=workspace, image_id=image_id)
    if image is None:
        raise NotFoundError(MSG_IMAGE_NOT_FOUND)
    return image


def image_next(*, image: TrainingImage) -> TrainingImage | None:
    """The workspace's next older image after ``image`` (the grid's order), for the "next" key."""
    return (
        TrainingImage.objects.filter(workspace_id=image.workspace_id, created__lt=image.created)
        .order_by("-created", "id")
        .only("id")
        .first()
    )


def image_boxes(*, task: Task, image: TrainingImage) -> list[dict]:
    """The boxes drawn on ``image`` with labels of the detection task, as the editor loads them."""
    objects = detection_selectors.detection_object_list(workspaces=[task.workspace_id]).filter(
        image=image, detection_label__tasks=task
    )
    return [{"id": str(o.pk), "label": str(o.detection_label_id), "box": o.data} for o in objects]


def evaluation_rows(*, version: ModelVersion, limit: int = EVALUATION_SHOWN) -> list[dict]:
    """The version's test-image records (already wrong first) with each image's thumbnail link and
    size; records of images deleted since are left out. One query."""
    records = (version.evaluation or [])[:limit]
    ids = [record["image_id"] for record in records]
    images = {
        str(image.pk): image
        for image in TrainingImage.objects.filter(workspace_id=version.workspace_id, pk__in=ids).only(
            "id", "thumbnail", "img_width", "img_height"
        )
    }
    rows = []
    for record in records:
        image = images.get(str(record["image_id"]))
        if image is not None:
            rows.append({**record, "thumb_url": signed_link(image.thumbnail), "image": image})
    return rows
