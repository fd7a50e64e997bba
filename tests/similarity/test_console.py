"""The console's "images like this" page and the descriptor progress, with the session client."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import Client

from apps.images.services import training_image_ingest
from apps.similarity.models import DescriptorRun
from tests.suggestions.conftest import BLUE, RED, solid

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_images_like_this_lists_the_nearest_images_after_the_descriptors_are_computed(
    console, workspace, colour_task, django_capture_on_commit_callbacks
):
    task = colour_task()
    rng = np.random.default_rng(0)
    red1, red2, blue = (
        training_image_ingest(workspace=workspace, data=solid(c, rng)) for c in (RED, RED, BLUE)
    )
    url = f"/console/tasks/{task.pk}/images/{red1.pk}/similar/"
    page = console.get(url).content.decode()
    assert "No descriptors yet" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(f"/console/tasks/{task.pk}/similar/refresh/", {"image": str(red1.pk)})
    assert response.status_code == 302 and response["Location"] == url
    page = console.get(url).content.decode()
    assert "The 2 nearest of 3 described images by version 1" in page
    # Nearest first: the other red before the blue; the image itself is not among them.
    assert page.index(f"/images/{red2.pk}/similar/") < page.index(f"/images/{blue.pk}/similar/")
    assert f"/images/{red1.pk}/similar/" not in page
    # The image grid links each image to its page.
    grid = console.get(f"/console/tasks/{task.pk}/images/?pool=on").content.decode()
    assert f"/images/{red1.pk}/similar/" in grid


def test_the_descriptor_progress_polls_while_the_job_runs_and_reloads_when_it_ends(console, colour_task):
    task = colour_task()
    run = DescriptorRun.objects.create(
        workspace=task.workspace,
        task=task,
        version=task.versions.get(),
        status="RUNNING",
        progress=40,
        total=10,
    )
    partial = console.get(f"/console/tasks/{task.pk}/similar/progress/")
    body = partial.content.decode()
    assert "40%" in body and "hx-trigger" in body and "4 of 10" not in body
    assert "HX-Refresh" not in partial
    DescriptorRun.objects.filter(pk=run.pk).update(status="DONE", progress=100)
    assert console.get(f"/console/tasks/{task.pk}/similar/progress/")["HX-Refresh"] == "true"


def test_computing_the_descriptors_of_a_task_with_nothing_deployed_says_why(console, colour_task):
    task = colour_task(trained=False)
    response = console.post(f"/console/tasks/{task.pk}/similar/refresh/", follow=True)
    assert "no trained model version" in response.content.decode()
    assert not DescriptorRun.objects.exists()
