"""Task endpoints: ownership, validation, the happy paths with their exact shapes, label attaching."""

from __future__ import annotations

import uuid

import pytest

from apps.labels.models import Label
from apps.tasks import services as task_services
from apps.tasks.models import Task
from apps.workspaces import services as workspace_services
from tests.factories import LabelFactory, TaskFactory

pytestmark = pytest.mark.django_db

PREFIXES = ["/recognition/v2", "/v2"]
TASK_FIELDS = {
    "id",
    "name",
    "type",
    "description",
    "production_version",
    "last_train_status",
    "workspace",
    "labels",
    "created",
    "keep_deployed_version",
    "architecture",
    "input_size",
    "train_time_budget",
    "final_refit",
}


@pytest.fixture
def foreign_task(other_user):
    """A task in someone else's workspace."""
    return TaskFactory(workspace=workspace_services.workspace_ensure_default(user=other_user), name="secret")


# --- authentication and ownership ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", "/task/"),
        ("post", "/task/"),
        ("get", "/task/{id}"),
        ("put", "/task/{id}"),
        ("patch", "/task/{id}/"),
        ("delete", "/task/{id}/"),
        ("post", "/task/{id}/add-label/"),
        ("post", "/task/{id}/remove-label/"),
    ],
)
def test_every_task_endpoint_needs_a_token(anon, workspace, method, suffix):
    task = TaskFactory(workspace=workspace)
    response = getattr(anon, method)("/recognition/v2" + suffix.format(id=task.pk), {}, format="json")
    assert response.status_code == 401
    assert Task.objects.filter(pk=task.pk, name=task.name).exists()


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "/task/{id}", {}),
        ("put", "/task/{id}", {"name": "mine now"}),
        ("patch", "/task/{id}/", {"name": "mine now"}),
        ("delete", "/task/{id}/", {}),
        ("post", "/task/{id}/add-label/", {"label_id": "{label}"}),
        ("post", "/task/{id}/remove-label/", {"label_id": "{label}"}),
    ],
)
def test_another_workspaces_task_is_a_404_and_stays_unchanged(
    api, workspace, foreign_task, method, suffix, body
):
    label = LabelFactory(workspace=workspace)
    body = {key: value.format(label=label.pk) for key, value in body.items()}
    response = getattr(api, method)(
        "/recognition/v2" + suffix.format(id=foreign_task.pk), body, format="json"
    )
    assert response.status_code == 404
    foreign_task.refresh_from_db()
    assert foreign_task.name == "secret"
    assert foreign_task.labels.count() == 0


def test_another_workspaces_task_is_not_listed(api, workspace, foreign_task):
    TaskFactory(workspace=workspace, name="mine")
    body = api.get("/recognition/v2/task/").json()
    assert [task["name"] for task in body["results"]] == ["mine"]


def test_an_unknown_or_malformed_task_id_is_a_404(api, workspace):
    assert api.get(f"/recognition/v2/task/{uuid.uuid4()}").status_code == 404
    assert api.get("/recognition/v2/task/not-a-uuid").status_code == 404


# --- create ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_it_creates_a_task_with_the_exact_fields(api, user, workspace, prefix):
    response = api.post(
        f"{prefix}/task/", {"name": "Cats", "type": "multi_class", "description": "pets"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == TASK_FIELDS
    task = Task.objects.get(pk=body["id"])
    assert body == {
        "id": str(task.pk),
        "name": "Cats",
        "type": "multi_class",
        "description": "pets",
        "production_version": -1,
        "last_train_status": "NOT_TRAINED",
        "workspace": str(workspace.pk),
        "labels": [],
        "created": body["created"],
        "keep_deployed_version": False,
        "architecture": "",
        "input_size": None,
        "train_time_budget": None,
        "final_refit": False,
    }
    assert task.owner == user
    assert task.workspace == workspace


def test_it_creates_a_task_from_a_multipart_form(api, workspace):
    # curl -F name=... -F type=...
    response = api.post(
        "/recognition/v2/task/", {"name": "Form task", "type": "regression"}, format="multipart"
    )
    assert response.status_code == 201
    assert response.json()["type"] == "regression"
    assert response.json()["description"] == ""


def test_a_task_defaults_to_multi_class_and_accepts_a_null_description(api, workspace):
    # The official client always sends ``description``, null when not given.
    response = api.post("/recognition/v2/task/", {"name": "x", "description": None}, format="json")
    assert response.status_code == 201
    assert response.json()["type"] == "multi_class"
    assert response.json()["description"] == ""


def test_a_multi_label_task_gets_its_negative_label_attached(api, workspace):
    response = api.post("/recognition/v2/task/", {"name": "Styles", "type": "multi_label"}, format="json")
    assert response.status_code == 201
    body = response.json()
    negative = Label.objects.get(negative_for_task_id=body["id"])
    assert negative.type == "tag"
    assert negative.workspace == workspace
    assert negative.name == "Styles - negative"
    assert body["labels"] == [{"id": str(negative.pk), "name": "Styles - negative", "type": "tag"}]


def test_other_task_types_get_no_negative_label(api, workspace):
    for task_type in ("multi_class", "regression"):
        api.post("/recognition/v2/task/", {"name": task_type, "type": task_type}, format="json")
    assert not Label.objects.exists()


def test_it_accepts_the_optional_training_fields(api, workspace):
    response = api.post(
        "/recognition/v2/task/",
        {"name": "x", "architecture": "resnet18", "input_size": 128, "keep_deployed_version": True},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["architecture"], body["input_size"], body["keep_deployed_version"]) == (
        "resnet18",
        128,
        True,
    )


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        ({}, {"name": ["This field is required."]}),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"name": "x", "type": "detection"}, {"type": ['"detection" is not a valid choice.']}),
        ({"name": "x", "architecture": "vit_huge"}, {"architecture": ['"vit_huge" is not a valid choice.']}),
        ({"name": "x", "input_size": 100}, {"input_size": ["input_size must be a multiple of 32."]}),
        (
            {"name": "x", "input_size": 16},
            {"input_size": ["Ensure this value is greater than or equal to 32."]},
        ),
        (
            {"name": "x", "train_time_budget": 5},
            {"train_time_budget": ["Ensure this value is greater than or equal to 10."]},
        ),
        (
            {"name": "x", "train_time_budget": "soon"},
            {"train_time_budget": ["A valid integer is required."]},
        ),
    ],
)
def test_it_rejects_a_bad_task_and_creates_nothing(api, workspace, payload, errors):
    response = api.post("/recognition/v2/task/", payload, format="json")
    assert response.status_code == 400
    assert response.json() == errors
    assert not Task.objects.exists()


# --- list ------------------------------------------------------------------------------------------


def test_the_list_is_paginated_and_filters_by_search_and_type(api, workspace):
    TaskFactory(workspace=workspace, name="Dog breeds")
    TaskFactory(workspace=workspace, name="Cat breeds", type=Task.Type.REGRESSION)
    TaskFactory(workspace=workspace, name="Cars")

    body = api.get("/recognition/v2/task/").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3
    assert [task["name"] for task in body["results"]] == ["Dog breeds", "Cat breeds", "Cars"]

    assert [t["name"] for t in api.get("/recognition/v2/task/?search=BREED").json()["results"]] == [
        "Dog breeds",
        "Cat breeds",
    ]
    assert [t["name"] for t in api.get('/recognition/v2/task/?search="cars"').json()["results"]] == ["Cars"]
    assert [t["name"] for t in api.get("/v2/task?type=regression").json()["results"]] == ["Cat breeds"]

    page = api.get("/recognition/v2/task/?page_size=2").json()
    assert len(page["results"]) == 2
    assert page["next"].endswith("page=2&page_size=2")


def test_an_unknown_type_filter_is_a_400(api, workspace):
    response = api.get("/recognition/v2/task/?type=detection")
    assert response.status_code == 400
    assert response.json() == {
        "type": ["Select a valid choice. detection is not one of the available choices."]
    }


def _tasks_with_labels(workspace, count: int) -> None:
    labels = [LabelFactory(workspace=workspace) for _ in range(3)]
    for _ in range(count):
        TaskFactory(workspace=workspace).labels.set(labels)


def test_the_list_costs_the_same_queries_for_1_and_50_tasks(
    api, workspace, settings, django_assert_num_queries
):
    settings.VF_TOKEN_CACHE_SECONDS = 0  # the token's lookups on every call, with Redis or without
    _tasks_with_labels(workspace, 1)
    # token, default workspace, count, page, prefetched labels
    with django_assert_num_queries(5):
        assert api.get("/recognition/v2/task/").status_code == 200
    _tasks_with_labels(workspace, 49)
    with django_assert_num_queries(5):
        body = api.get("/recognition/v2/task/?page_size=100").json()
    assert len(body["results"]) == 50
    assert all(len(task["labels"]) == 3 for task in body["results"])


# --- retrieve, update, delete ----------------------------------------------------------------------


def test_it_answers_with_and_without_the_trailing_slash(api, workspace):
    task = TaskFactory(workspace=workspace, name="t")
    for path in (
        f"/recognition/v2/task/{task.pk}",
        f"/recognition/v2/task/{task.pk}/",
        f"/v2/task/{task.pk}",
    ):
        response = api.get(path)
        assert response.status_code == 200
        assert response.json()["name"] == "t"


def test_it_updates_a_task(api, workspace):
    task = TaskFactory(workspace=workspace, name="old")
    response = api.patch(f"/recognition/v2/task/{task.pk}", {"description": "new text"}, format="json")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["description"]) == ("old", "new text")

    response = api.put(f"/recognition/v2/task/{task.pk}/", {"name": "renamed"}, format="json")
    assert response.status_code == 200
    task.refresh_from_db()
    assert (task.name, task.description, task.type) == ("renamed", "", "multi_class")


def test_put_needs_a_name(api, workspace):
    task = TaskFactory(workspace=workspace, name="old")
    response = api.put(f"/recognition/v2/task/{task.pk}", {"description": "x"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"name": ["This field is required."]}


def test_the_type_of_a_task_with_labels_is_locked(api, workspace):
    task = TaskFactory(workspace=workspace)
    task.labels.add(LabelFactory(workspace=workspace))
    response = api.patch(f"/recognition/v2/task/{task.pk}", {"type": "multi_label"}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": task_services.MSG_TASK_TYPE_LOCKED}
    task.refresh_from_db()
    assert task.type == "multi_class"


def test_a_label_less_task_turned_multi_label_gets_its_negative_label(api, workspace):
    task = TaskFactory(workspace=workspace, name="t")
    response = api.patch(f"/recognition/v2/task/{task.pk}", {"type": "multi_label"}, format="json")
    assert response.status_code == 200
    assert [label["name"] for label in response.json()["labels"]] == ["t - negative"]


def test_a_production_version_below_one_is_a_400(api, workspace):
    task = TaskFactory(workspace=workspace)
    response = api.patch(f"/recognition/v2/task/{task.pk}", {"production_version": 0}, format="json")
    assert response.status_code == 400
    assert response.json() == {"production_version": ["Ensure this value is greater than or equal to 1."]}


def test_deleting_a_task_keeps_its_labels(api, workspace):
    task = task_services.task_create(workspace=workspace, owner=workspace.owner, name="t", type="multi_label")
    label = LabelFactory(workspace=workspace, type=Label.Type.TAG)
    task.labels.add(label)
    response = api.delete(f"/recognition/v2/task/{task.pk}/")
    assert response.status_code == 204
    assert not Task.objects.filter(pk=task.pk).exists()
    assert Label.objects.filter(workspace=workspace).count() == 2  # the tag and the former negative label
    assert Label.objects.filter(negative_for_task__isnull=False).count() == 0


# --- add-label / remove-label ----------------------------------------------------------------------


def test_it_attaches_and_detaches_a_label(api, workspace):
    task = TaskFactory(workspace=workspace)
    label = LabelFactory(workspace=workspace, name="cat")
    response = api.post(
        f"/recognition/v2/task/{task.pk}/add-label/", {"label_id": str(label.pk)}, format="json"
    )
    assert response.status_code == 200
    assert set(response.json()) == TASK_FIELDS
    assert response.json()["labels"] == [{"id": str(label.pk), "name": "cat", "type": "category"}]
    # Attaching twice changes nothing.
    assert (
        api.post(f"/v2/task/{task.pk}/add-label", {"label_id": str(label.pk)}, format="json").status_code
        == 200
    )
    assert list(task.labels.all()) == [label]

    response = api.post(
        f"/recognition/v2/task/{task.pk}/remove-label", {"label_id": str(label.pk)}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["labels"] == []
    assert Label.objects.filter(pk=label.pk).exists()


def test_it_attaches_a_label_from_a_multipart_form(api, workspace):
    # curl -F label_id=...
    task = TaskFactory(workspace=workspace)
    label = LabelFactory(workspace=workspace)
    response = api.post(
        f"/recognition/v2/task/{task.pk}/add-label", {"label_id": str(label.pk)}, format="multipart"
    )
    assert response.status_code == 200
    assert task.labels.get() == label
    response = api.post(
        f"/recognition/v2/task/{task.pk}/remove-label", {"label_id": str(label.pk)}, format="multipart"
    )
    assert response.status_code == 200
    assert not task.labels.exists()


@pytest.mark.parametrize(
    ("task_type", "label_type", "message"),
    [
        ("multi_class", "tag", "A multi_class task accepts only category labels; this label is a tag."),
        ("multi_label", "category", "A multi_label task accepts only tag labels; this label is a category."),
        ("regression", "category", "A regression task accepts only value labels; this label is a category."),
        ("multi_class", "value", "A multi_class task accepts only category labels; this label is a value."),
    ],
)
def test_it_rejects_a_label_of_the_wrong_type(api, workspace, task_type, label_type, message):
    task = TaskFactory(workspace=workspace, type=task_type)
    label = LabelFactory(workspace=workspace, type=label_type)
    response = api.post(
        f"/recognition/v2/task/{task.pk}/add-label/", {"label_id": str(label.pk)}, format="json"
    )
    assert response.status_code == 409  # well formed, but the label's type conflicts with the task's
    assert response.json() == {"detail": message}
    assert not task.labels.filter(pk=label.pk).exists()


@pytest.mark.parametrize("verb", ["add-label", "remove-label"])
def test_a_label_of_another_workspace_is_a_404(api, workspace, other_user, verb):
    task = TaskFactory(workspace=workspace)
    foreign = LabelFactory(workspace=workspace_services.workspace_ensure_default(user=other_user))
    response = api.post(
        f"/recognition/v2/task/{task.pk}/{verb}/", {"label_id": str(foreign.pk)}, format="json"
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Label not found."}
    assert not task.labels.exists()
    assert not foreign.tasks.exists()


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"label_id": ["This field is required."]}),
        ({"label_id": "nope"}, {"label_id": ["Must be a valid UUID."]}),
    ],
)
def test_add_label_needs_a_label_id(api, workspace, body, errors):
    task = TaskFactory(workspace=workspace)
    response = api.post(f"/recognition/v2/task/{task.pk}/add-label/", body, format="json")
    assert response.status_code == 400
    assert response.json() == errors


def test_the_negative_label_cannot_be_detached(api, workspace):
    task = task_services.task_create(workspace=workspace, owner=workspace.owner, name="t", type="multi_label")
    negative = task.negative_labels.get()
    response = api.post(
        f"/recognition/v2/task/{task.pk}/remove-label/", {"label_id": str(negative.pk)}, format="json"
    )
    assert response.status_code == 409
    assert response.json() == {"detail": task_services.MSG_NEGATIVE_LABEL_DETACH}
    assert task.labels.get() == negative


# --- workspaces ------------------------------------------------------------------------------------


def test_a_member_works_in_a_shared_workspace(api, workspace, shared_workspace):
    response = api.post(
        "/recognition/v2/task/", {"name": "team task", "workspace": str(shared_workspace.pk)}, format="json"
    )
    assert response.status_code == 201
    task_id = response.json()["id"]
    assert response.json()["workspace"] == str(shared_workspace.pk)
    # Not in the default workspace...
    assert api.get(f"/recognition/v2/task/{task_id}").status_code == 404
    assert api.get("/recognition/v2/task/").json()["count"] == 0
    # ...but in the shared one, by query parameter or body field.
    assert api.get(f"/recognition/v2/task/{task_id}?workspace={shared_workspace.pk}").status_code == 200
    assert api.get(f"/recognition/v2/task/?workspace={shared_workspace.pk}").json()["count"] == 1
    label = LabelFactory(workspace=shared_workspace)
    response = api.post(
        f"/recognition/v2/task/{task_id}/add-label/",
        {"label_id": str(label.pk), "workspace": str(shared_workspace.pk)},
        format="json",
    )
    assert response.status_code == 200
    assert api.delete(f"/recognition/v2/task/{task_id}/?workspace={shared_workspace.pk}").status_code == 204


def test_a_workspace_the_caller_is_not_a_member_of_is_a_404(api, workspace, other_user):
    theirs = workspace_services.workspace_ensure_default(user=other_user)
    task = TaskFactory(workspace=theirs)
    assert api.get(f"/recognition/v2/task/?workspace={theirs.pk}").status_code == 404
    assert api.get(f"/recognition/v2/task/{task.pk}?workspace={theirs.pk}").status_code == 404
    response = api.post(
        "/recognition/v2/task/", {"name": "intruder", "workspace": str(theirs.pk)}, format="json"
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Workspace not found."}
    assert not Task.objects.filter(name="intruder").exists()


# --- deploying a version ---------------------------------------------------------------------------


def test_patching_production_version_deploys_a_trained_version(api, workspace):
    from apps.training.models import ModelVersion

    task = TaskFactory(workspace=workspace)
    ModelVersion.objects.create(workspace=workspace, task=task, version=1, train_status="TRAINED")
    ModelVersion.objects.create(workspace=workspace, task=task, version=2, train_status="FAILED")

    response = api.patch(f"/recognition/v2/task/{task.pk}/", {"production_version": 1}, format="json")
    assert response.status_code == 200
    assert response.json()["production_version"] == 1

    response = api.patch(f"/recognition/v2/task/{task.pk}/", {"production_version": 2}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "Model version 2 of this task is not trained."}
    task.refresh_from_db()
    assert task.production_version == 1


def test_a_refused_deploy_changes_nothing_else_in_the_same_request(api, workspace):
    task = TaskFactory(workspace=workspace, name="before")
    response = api.patch(
        f"/recognition/v2/task/{task.pk}/", {"name": "after", "production_version": 3}, format="json"
    )
    assert response.status_code == 409
    task.refresh_from_db()
    assert (task.name, task.production_version) == ("before", -1)
