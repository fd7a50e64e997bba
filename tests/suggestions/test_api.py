"""The labelling loop's endpoints: the pool filter and pool uploads, suggestions (scored by the real
deployed model), pre-labels and accepting them. Every endpoint: 401, another workspace's 404, bad
input 400 with its message, and the happy path's exact fields."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from apps.images.models import ImageLabel
from apps.images.services import training_image_ingest
from apps.inference.services import MSG_NOT_TRAINED
from apps.suggestions import services
from apps.suggestions.models import PoolImage, SuggestionRun
from apps.suggestions.signals import suggestions_ready
from apps.tasks.models import Task
from apps.workspaces import services as workspace_services
from tests.suggestions.conftest import BLUE, GREEN, RED, label_id, solid

pytestmark = pytest.mark.django_db

BASE = "/recognition/v2/task/{}/"


def _pool(workspace, colours, seed=0):
    rng = np.random.default_rng(seed)
    return [training_image_ingest(workspace=workspace, data=solid(colour, rng)) for colour in colours]


def _mixed(r, g, b):
    """A colour between the model's classes: the model is unsure of it."""
    return (r, g, b)


# --------------------------------------------------------------------------- the pool


def test_the_pool_filter_lists_unlabelled_and_uploaded_images_but_not_labelled_ones(
    api, workspace, colour_task
):
    task = colour_task()
    other_task = Task.objects.create(workspace=workspace, name="other", type="multi_class")
    unlabelled = _pool(workspace, [RED])[0]
    labelled = training_image_ingest(workspace=workspace, data=solid(GREEN, np.random.default_rng(1)))
    ImageLabel.objects.create(image=labelled, label_id=label_id("green"))
    # Labelled for another task only, but uploaded to this one: in this task's pool.
    elsewhere = training_image_ingest(workspace=workspace, data=solid(BLUE, np.random.default_rng(2)))
    from apps.labels.models import Label

    other_label = Label.objects.create(workspace=workspace, name="elsewhere")
    other_task.labels.add(other_label)
    ImageLabel.objects.create(image=elsewhere, label=other_label)
    PoolImage.objects.create(task=task, image=elsewhere)

    response = api.get(f"/recognition/v2/training-image/?pool={task.pk}")
    assert response.status_code == 200
    assert {row["id"] for row in response.json()["results"]} == {str(unlabelled.pk), str(elsewhere.pk)}
    assert response.json()["count"] == 2
    # The other task's pool: the unlabelled image only (the other is labelled for it).
    response = api.get(f"/recognition/v2/training-image/?pool={other_task.pk}")
    assert {row["id"] for row in response.json()["results"]} == {str(unlabelled.pk)}


def test_the_pool_of_another_workspaces_task_is_empty(api, other_user, workspace):
    _pool(workspace, [RED])
    theirs = workspace_services.workspace_ensure_default(user=other_user)
    task = Task.objects.create(workspace=theirs, name="theirs")
    response = api.get(f"/recognition/v2/training-image/?pool={task.pk}")
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_the_pool_filter_refuses_a_bad_task_id(api, workspace):
    response = api.get("/recognition/v2/training-image/?pool=nope")
    assert response.status_code == 400
    assert "pool" in response.json()


def test_an_image_uploaded_to_the_pool_is_in_it(api, workspace, colour_task):
    task = colour_task(trained=False)
    data = base64.b64encode(solid(RED, np.random.default_rng(5))).decode()
    response = api.post(BASE.format(task.pk) + "pool/", {"base64": data}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= {"id", "img_path", "thumb_img_path", "labels"}
    assert body["labels"] == []
    assert PoolImage.objects.filter(task=task, image_id=body["id"]).exists()
    listed = api.get(f"/recognition/v2/training-image/?pool={task.pk}").json()["results"]
    assert [row["id"] for row in listed] == [body["id"]]


def test_a_pool_upload_without_an_image_is_a_400_and_stores_nothing(api, workspace, colour_task):
    task = colour_task(trained=False)
    response = api.post(BASE.format(task.pk) + "pool/", {"base64": "not an image"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"]
    assert not PoolImage.objects.exists()


# --------------------------------------------------------------------------- suggestions


def _refresh(api, task, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(BASE.format(task.pk) + "suggestions/refresh/")
    return response


def test_no_token_is_a_401_on_every_route(anon, workspace, colour_task):
    task = colour_task(trained=False)
    for method, path in [
        ("get", "suggestions/"),
        ("post", "suggestions/refresh/"),
        ("post", "pool/"),
        ("get", "prelabel/?image=x"),
        ("post", "prelabel/"),
    ]:
        assert getattr(anon, method)(BASE.format(task.pk) + path).status_code == 401, path


def test_another_workspaces_task_is_a_404_on_every_route(api, other_api, workspace, colour_task):
    task = colour_task()
    image = _pool(workspace, [RED])[0]
    for method, path, body in [
        ("get", "suggestions/", None),
        ("post", "suggestions/refresh/", None),
        ("post", "pool/", {"base64": base64.b64encode(solid(RED, np.random.default_rng(9))).decode()}),
        ("get", f"prelabel/?image={image.pk}", None),
        ("post", "prelabel/", {"image_id": str(image.pk)}),
    ]:
        response = getattr(other_api, method)(BASE.format(task.pk) + path, body, format="json")
        assert response.status_code == 404, (path, response.content)
    assert not SuggestionRun.objects.exists()
    assert not ImageLabel.objects.filter(image=image).exists()


def test_suggestions_rank_the_pool_with_the_models_guess(
    api, workspace, colour_task, django_capture_on_commit_callbacks
):
    task = colour_task()
    # Clear colours the model is sure of, and in-between colours it hesitates on.
    sure = _pool(workspace, [RED, GREEN, BLUE, RED, GREEN, BLUE], seed=1)
    unsure = _pool(workspace, [(128, 112, 45), (40, 120, 130), (125, 45, 125)], seed=2)
    labelled = training_image_ingest(workspace=workspace, data=solid(RED, np.random.default_rng(7)))
    ImageLabel.objects.create(image=labelled, label_id=label_id("red"))

    response = _refresh(api, task, django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    run = response.json()
    assert set(run) == {
        "id",
        "task_id",
        "version",
        "status",
        "progress",
        "scored",
        "total",
        "error",
        "created",
        "finished",
    }
    assert run["status"] == "QUEUED" and run["task_id"] == str(task.pk) and run["version"] == 1

    response = api.get(BASE.format(task.pk) + "suggestions/?count=20")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"task_id", "run", "version", "results"}
    assert body["version"] == 1 and body["run"]["id"] == run["id"]
    done = body["run"]
    assert done["status"] == "DONE" and done["progress"] == 100.0 and done["total"] == done["scored"] == 9
    results = body["results"]
    assert len(results) == 9  # the labelled image is not in the pool
    first = results[0]
    assert set(first) == {"image_id", "rank", "uncertainty", "img_path", "thumb_img_path", "guess"}
    assert set(first["guess"]) == {"best_label", "labels"}
    assert {label["name"] for label in first["guess"]["labels"]} == {"red", "green", "blue"}
    assert first["guess"]["labels"][0]["prob"] >= first["guess"]["labels"][-1]["prob"]
    # The in-between colours are among the first suggestions; the clear ones come after.
    unsure_ids = {str(image.pk) for image in unsure}
    assert unsure_ids & {row["image_id"] for row in results[:3]}
    assert max(r["uncertainty"] for r in results if r["image_id"] in unsure_ids) > max(
        r["uncertainty"] for r in results if r["image_id"] in {str(i.pk) for i in sure[:3]}
    )

    # count and skip; a labelled image leaves the suggestions at once.
    top = results[0]["image_id"]
    assert len(api.get(BASE.format(task.pk) + "suggestions/?count=2").json()["results"]) == 2
    skipped = api.get(BASE.format(task.pk) + f"suggestions/?skip={top}").json()["results"]
    assert top not in {row["image_id"] for row in skipped}
    ImageLabel.objects.create(image_id=top, label_id=label_id("red"))
    after = api.get(BASE.format(task.pk) + "suggestions/").json()["results"]
    assert top not in {row["image_id"] for row in after} and len(after) == 8


def test_suggestions_before_any_scoring_are_empty(api, workspace, colour_task):
    task = colour_task()
    response = api.get(BASE.format(task.pk) + "suggestions/")
    assert response.status_code == 200
    assert response.json() == {"task_id": str(task.pk), "run": None, "version": None, "results": []}


@pytest.mark.parametrize("query", ["count=0", "count=101", "count=x", "skip=nope"])
def test_bad_suggestion_queries_are_a_400(api, workspace, colour_task, query):
    task = colour_task(trained=False)
    response = api.get(BASE.format(task.pk) + f"suggestions/?{query}")
    assert response.status_code == 400
    assert set(response.json()) & {"count", "skip"}


def test_scoring_an_untrained_task_is_a_409_and_queues_nothing(api, workspace, colour_task):
    task = colour_task(trained=False)
    response = api.post(BASE.format(task.pk) + "suggestions/refresh/")
    assert response.status_code == 409
    assert response.json()["detail"] == MSG_NOT_TRAINED
    assert not SuggestionRun.objects.exists()


def test_scoring_a_regression_task_is_a_409(api, workspace):
    task = Task.objects.create(workspace=workspace, name="values", type="regression")
    response = api.post(BASE.format(task.pk) + "suggestions/refresh/")
    assert response.status_code == 409
    assert response.json()["detail"] == services.MSG_NO_SUGGESTIONS_FOR_REGRESSION


def test_a_finished_scoring_sends_suggestions_ready(
    api, workspace, colour_task, django_capture_on_commit_callbacks
):
    task = colour_task()
    _pool(workspace, [RED, BLUE])
    heard = []

    def listener(sender, run, count, **kwargs):
        heard.append((run.task_id, count))

    suggestions_ready.connect(listener)
    try:
        _refresh(api, task, django_capture_on_commit_callbacks)
    finally:
        suggestions_ready.disconnect(listener)
    assert heard == [(task.pk, 2)]


# --------------------------------------------------------------------------- pre-labels


def test_the_guess_for_an_image_stores_nothing(api, workspace, colour_task):
    task = colour_task()
    image = _pool(workspace, [BLUE])[0]
    response = api.get(BASE.format(task.pk) + f"prelabel/?image={image.pk}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"image_id", "version", "guess"}
    assert body["version"] == 1
    assert body["guess"]["best_label"]["name"] == "blue"
    assert [label["name"] for label in body["guess"]["labels"]][0] == "blue"
    assert not ImageLabel.objects.filter(image=image).exists()


def test_a_guess_needs_an_image_of_the_workspace(api, other_user, workspace, colour_task):
    task = colour_task()
    response = api.get(BASE.format(task.pk) + "prelabel/")
    assert response.status_code == 400 and "image" in response.json()
    theirs = workspace_services.workspace_ensure_default(user=other_user)
    image = _pool(theirs, [RED])[0]
    response = api.get(BASE.format(task.pk) + f"prelabel/?image={image.pk}")
    assert response.status_code == 404


def test_accepting_the_guess_stores_the_best_label(api, workspace, colour_task):
    task = colour_task()
    image = _pool(workspace, [GREEN])[0]
    response = api.post(BASE.format(task.pk) + "prelabel/", {"image_id": str(image.pk)}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "image_id": str(image.pk),
        "labels": [{"id": label_id("green"), "name": "green"}],
    }
    assert list(ImageLabel.objects.filter(image=image).values_list("label_id", flat=True)) == [
        __import__("uuid").UUID(label_id("green"))
    ]


def test_a_correction_replaces_the_tasks_label(api, workspace, colour_task):
    task = colour_task()
    image = _pool(workspace, [GREEN])[0]
    ImageLabel.objects.create(image=image, label_id=label_id("green"))
    body = {"image_id": str(image.pk), "labels": [label_id("red")]}
    response = api.post(BASE.format(task.pk) + "prelabel/", body, format="json")
    assert response.status_code == 200
    assert [str(pk) for pk in ImageLabel.objects.filter(image=image).values_list("label_id", flat=True)] == [
        label_id("red")
    ]


def test_a_label_of_another_task_is_a_400_and_nothing_is_stored(api, workspace, colour_task):
    task = colour_task()
    image = _pool(workspace, [GREEN])[0]
    from apps.labels.models import Label

    stray = Label.objects.create(workspace=workspace, name="stray")
    response = api.post(
        BASE.format(task.pk) + "prelabel/",
        {"image_id": str(image.pk), "labels": [str(stray.pk)]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["detail"] == services.MSG_LABEL_NOT_IN_TASK.format(label_id=stray.pk)
    two = {"image_id": str(image.pk), "labels": [label_id("red"), label_id("blue")]}
    response = api.post(BASE.format(task.pk) + "prelabel/", two, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == services.MSG_ONE_LABEL
    assert not ImageLabel.objects.filter(image=image).exists()
