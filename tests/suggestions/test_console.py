"""The console's "Label next" page and the pool upload, with the session client (the browser walk
is in tests/console/test_browser.py)."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import Client

from apps.images.models import ImageLabel
from apps.images.services import training_image_ingest
from apps.suggestions.models import PoolImage, SuggestionRun
from tests.suggestions.conftest import BLUE, GREEN, label_id, solid

pytestmark = pytest.mark.django_db


@pytest.fixture
def console(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_label_next_shows_the_top_suggestion_with_the_guess_selected_and_accepting_stores_it(
    console, workspace, colour_task, django_capture_on_commit_callbacks
):
    task = colour_task()
    image = training_image_ingest(workspace=workspace, data=solid(BLUE, np.random.default_rng(0)))
    url = f"/console/tasks/{task.pk}/label-next/"
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(url + "refresh/")
    assert response.status_code == 302
    page = console.get(url).content.decode()
    assert str(image.pk) in page
    assert f'value="{label_id("blue")}" data-key="3" checked' in page
    assert "1 image in the pool" in page

    response = console.post(url + "accept/", {"image": str(image.pk), "label": label_id("green")})
    assert response.status_code == 302
    assert [str(pk) for pk in ImageLabel.objects.filter(image=image).values_list("label_id", flat=True)] == [
        label_id("green")
    ]
    page = console.get(url, follow=True).content.decode()
    assert "No suggestion left" in page and "Labelled: green." in page


def test_label_next_before_a_scoring_says_so_and_the_progress_polls_while_it_runs(console, colour_task):
    task = colour_task()
    url = f"/console/tasks/{task.pk}/label-next/"
    assert "has not been scored yet" in console.get(url).content.decode()
    SuggestionRun.objects.create(
        workspace=task.workspace, task=task, version=1, status="RUNNING", progress=40
    )
    partial = console.get(url + "progress/")
    assert "40%" in partial.content.decode() and "hx-trigger" in partial.content.decode()
    assert "HX-Refresh" not in partial


def test_an_unlabelled_upload_in_the_console_joins_the_pool(console, colour_task):
    from django.core.files.uploadedfile import SimpleUploadedFile

    task = colour_task(trained=False)
    data = solid(GREEN, np.random.default_rng(4))
    upload = SimpleUploadedFile("green.png", data, content_type="image/png")
    response = console.post(f"/console/tasks/{task.pk}/images/upload/", {"file": upload})
    assert response.status_code == 201, response.content
    assert PoolImage.objects.filter(task=task, image_id=response.json()["id"]).exists()
    grid = console.get(f"/console/tasks/{task.pk}/images/?pool=on").content.decode()
    assert response.json()["id"] in grid
