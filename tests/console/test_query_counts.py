"""Every console page costs a constant number of queries with 10,000 images in the task (made in
bulk, without files): the counts are subqueries, labels come in one prefetch, the grid is one page.
"""

from __future__ import annotations

import pytest

from apps.detection.models import DetectionLabel, DetectionObject
from apps.images.models import ImageLabel, TrainingImage
from apps.labels.models import Label
from apps.tasks.models import Task
from apps.training.models import ModelVersion
from tests.factories import TaskFactory

IMAGES = 10_000
# Session, user, workspace, switcher and the page's own reads; the same with 10 or 10,000 images.
MAX_QUERIES = 12
# A detection task is found after the recognition tasks' lookup misses; the editor reads the boxes.
MAX_DETECTION_QUERIES = 14


def _bulk_images(workspace, count: int, labels: list) -> list[TrainingImage]:
    images = TrainingImage.objects.bulk_create(
        TrainingImage(
            workspace=workspace,
            file=f"training-images/bulk/{n}.jpg",
            thumbnail=f"training-images/bulk/thumbs/{n}.jpg",
            img_width=64,
            img_height=48,
            content_hash=f"{n:064x}",
            test_image=n % 5 == 0,
        )
        for n in range(count)
    )
    if labels:
        ImageLabel.objects.bulk_create(
            ImageLabel(image=image, label=labels[n % len(labels)]) for n, image in enumerate(images)
        )
    return images


@pytest.fixture
def big_task(workspace):
    task = TaskFactory(workspace=workspace)
    labels = [Label.objects.create(workspace=workspace, name=f"label {n}") for n in range(4)]
    task.labels.add(*labels)
    images = _bulk_images(workspace, IMAGES, labels)
    evaluation = [
        {"image_id": str(image.id), "true_labels": [], "predicted_labels": [], "correct": n % 2 == 0}
        for n, image in enumerate(images[:200])
    ]
    for number in (1, 2, 3):
        ModelVersion.objects.create(
            workspace=workspace,
            task=task,
            version=number,
            train_status="TRAINED",
            evaluation=evaluation,
            metrics={"confusion_matrix": {"labels": ["a", "b"], "matrix": [[1, 2], [3, 4]]}},
        )
    return task, labels


PAGES = [
    "/console/tasks/",
    "/console/tasks/{task}/",
    "/console/tasks/{task}/images/",
    "/console/tasks/{task}/images/?page=50",
    "/console/tasks/{task}/images/?label={label}&test=1",
    "/console/tasks/{task}/images/?unlabelled=on",
    "/console/tasks/{task}/versions/2/",
    "/console/tasks/{task}/versions/2/progress/",
    "/console/workspace/members/",
]


def test_each_page_costs_a_constant_number_of_queries_with_10k_images(
    console, big_task, django_assert_max_num_queries
):
    task, labels = big_task
    console.get("/console/tasks/")  # the session's first request also stores the current workspace
    for path in PAGES:
        url = path.format(task=task.id, label=labels[1].id)
        with django_assert_max_num_queries(MAX_QUERIES, info=url):
            response = console.get(url)
        assert response.status_code == 200, url
    grid = console.get(f"/console/tasks/{task.id}/images/").content.decode()
    assert f"{IMAGES:,}".replace(",", "") in grid.replace(",", "")  # the count covers all 10,000


def test_the_detection_pages_cost_a_constant_number_of_queries_with_10k_images(
    console, workspace, django_assert_max_num_queries
):
    task = Task.objects.create(workspace=workspace, name="cars", type="detection", owner=workspace.owner)
    car = DetectionLabel.objects.create(workspace=workspace, name="car")
    car.tasks.add(task)
    images = _bulk_images(workspace, IMAGES, [])
    DetectionObject.objects.bulk_create(
        DetectionObject(workspace=workspace, detection_label=car, image=image, data=[1, 1, 9, 9])
        for image in images[::2]
    )
    console.get("/console/tasks/")
    for url in (
        f"/console/tasks/{task.id}/",
        f"/console/tasks/{task.id}/images/",
        f"/console/tasks/{task.id}/images/{images[500].id}/boxes/",
    ):
        with django_assert_max_num_queries(MAX_DETECTION_QUERIES, info=url):
            assert console.get(url).status_code == 200
