"""Label endpoints: ownership, validation, counts without a query per row, delete and wipe."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from apps.images.models import TrainingImage
from apps.images.services import training_image_ingest
from apps.labels import services as label_services
from apps.labels.models import Label
from apps.tasks import services as task_services
from apps.workspaces import services as workspace_services
from tests.factories import LabelFactory, TaskFactory

pytestmark = pytest.mark.django_db

PREFIXES = ["/recognition/v2", "/v2"]
LABEL_FIELDS = {
    "id",
    "name",
    "type",
    "description",
    "output_name",
    "images_count",
    "tasks_count",
    "negative_for_task",
    "workspace",
    "created",
}


def png_bytes(seed: int) -> bytes:
    """A small PNG whose bytes differ per seed (the same bytes twice are a duplicate)."""
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (seed % 256, (seed * 7) % 256, (seed * 13) % 256)).save(buffer, "PNG")
    return buffer.getvalue()


def add_images(workspace, labels, count: int, start: int = 0) -> list[TrainingImage]:
    return [
        training_image_ingest(
            workspace=workspace, data=png_bytes(start + i), label_ids=[label.pk for label in labels]
        )
        for i in range(count)
    ]


@pytest.fixture
def foreign_label(other_user):
    return LabelFactory(workspace=workspace_services.workspace_ensure_default(user=other_user), name="secret")


# --- authentication and ownership ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", "/label/"),
        ("post", "/label/"),
        ("get", "/label/{id}"),
        ("put", "/label/{id}"),
        ("patch", "/label/{id}/"),
        ("delete", "/label/{id}"),
        ("delete", "/label/{id}/wipe"),
    ],
)
def test_every_label_endpoint_needs_a_token(anon, workspace, method, suffix):
    label = LabelFactory(workspace=workspace)
    response = getattr(anon, method)("/recognition/v2" + suffix.format(id=label.pk), {}, format="json")
    assert response.status_code == 401
    assert Label.objects.filter(pk=label.pk, name=label.name).exists()


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "/label/{id}", {}),
        ("put", "/label/{id}", {"name": "mine now"}),
        ("patch", "/label/{id}/", {"name": "mine now"}),
        ("delete", "/label/{id}", {}),
        ("delete", "/label/{id}/wipe", {}),
    ],
)
def test_another_workspaces_label_is_a_404_and_stays_unchanged(
    api, workspace, foreign_label, method, suffix, body
):
    image = add_images(foreign_label.workspace, [foreign_label], 1)[0]
    response = getattr(api, method)(
        "/recognition/v2" + suffix.format(id=foreign_label.pk), body, format="json"
    )
    assert response.status_code == 404
    foreign_label.refresh_from_db()
    assert foreign_label.name == "secret"
    assert TrainingImage.objects.filter(pk=image.pk).exists()


def test_another_workspaces_label_is_not_listed(api, workspace, foreign_label):
    LabelFactory(workspace=workspace, name="mine")
    assert [label["name"] for label in api.get("/recognition/v2/label/").json()["results"]] == ["mine"]


def test_an_unknown_or_malformed_label_id_is_a_404(api, workspace):
    assert api.get(f"/recognition/v2/label/{uuid.uuid4()}").status_code == 404
    assert api.get("/recognition/v2/label/not-a-uuid/").status_code == 404


# --- create ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_it_creates_a_label_with_the_exact_fields(api, workspace, prefix):
    response = api.post(
        f"{prefix}/label/",
        {"name": "Cat", "type": "category", "description": "felines", "output_name": "cat"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    label = Label.objects.get(pk=body["id"])
    assert body == {
        "id": str(label.pk),
        "name": "Cat",
        "type": "category",
        "description": "felines",
        "output_name": "cat",
        "images_count": 0,
        "tasks_count": 0,
        "negative_for_task": None,
        "workspace": str(workspace.pk),
        "created": body["created"],
    }


def test_it_creates_a_label_from_a_multipart_form(api, workspace):
    # curl -F name=... -F type=...
    response = api.post("/recognition/v2/label/", {"name": "Striped", "type": "tag"}, format="multipart")
    assert response.status_code == 201
    assert (response.json()["type"], response.json()["description"]) == ("tag", "")


def test_a_label_defaults_to_category_and_accepts_null_texts(api, workspace):
    # The official client sends description and output_name as null when not given.
    response = api.post(
        "/recognition/v2/label/", {"name": "x", "description": None, "output_name": None}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["type"], body["description"], body["output_name"]) == ("category", "", "")


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        ({}, {"name": ["This field is required."]}),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"name": "x", "type": "box"}, {"type": ['"box" is not a valid choice.']}),
        ({"name": "x" * 256}, {"name": ["Ensure this field has no more than 255 characters."]}),
    ],
)
def test_it_rejects_a_bad_label_and_creates_nothing(api, workspace, payload, errors):
    response = api.post("/recognition/v2/label/", payload, format="json")
    assert response.status_code == 400
    assert response.json() == errors
    assert not Label.objects.exists()


# --- list ------------------------------------------------------------------------------------------


def test_the_list_filters_by_task_search_and_type(api, workspace):
    task = TaskFactory(workspace=workspace)
    cat = LabelFactory(workspace=workspace, name="Cat")
    LabelFactory(workspace=workspace, name="Wildcat", type=Label.Type.TAG)
    LabelFactory(workspace=workspace, name="Dog")
    task.labels.add(cat)

    def names(query: str) -> list[str]:
        response = api.get(f"/recognition/v2/label/{query}")
        assert response.status_code == 200
        return [label["name"] for label in response.json()["results"]]

    assert names("") == ["Cat", "Wildcat", "Dog"]
    assert names(f"?task={task.pk}") == ["Cat"]
    assert names(f"?task={uuid.uuid4()}") == []
    assert names("?search=cat") == ["Cat", "Wildcat"]
    assert names('?search="dog"') == ["Dog"]
    assert names("?type=tag") == ["Wildcat"]
    assert names("?search=cat&type=category") == ["Cat"]


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("?task=nope", {"task": ["Enter a valid UUID."]}),
        ("?type=box", {"type": ["Select a valid choice. box is not one of the available choices."]}),
    ],
)
def test_a_bad_filter_is_a_400(api, workspace, query, errors):
    response = api.get(f"/recognition/v2/label/{query}")
    assert response.status_code == 400
    assert response.json() == errors


def test_the_counts_are_right(api, workspace):
    cat, dog = LabelFactory(workspace=workspace, name="cat"), LabelFactory(workspace=workspace, name="dog")
    first, second = TaskFactory(workspace=workspace), TaskFactory(workspace=workspace)
    first.labels.add(cat, dog)
    second.labels.add(cat)
    add_images(workspace, [cat], 3)
    add_images(workspace, [cat, dog], 2, start=10)
    counts = {
        label["name"]: (label["images_count"], label["tasks_count"])
        for label in api.get("/recognition/v2/label/").json()["results"]
    }
    assert counts == {"cat": (5, 2), "dog": (2, 1)}
    detail = api.get(f"/recognition/v2/label/{cat.pk}").json()
    assert (detail["images_count"], detail["tasks_count"]) == (5, 2)


def _labels_with_tasks(workspace, count: int) -> None:
    tasks = [TaskFactory(workspace=workspace) for _ in range(2)]
    for _ in range(count):
        label = LabelFactory(workspace=workspace)
        for task in tasks:
            task.labels.add(label)


def test_the_list_costs_the_same_queries_for_1_and_50_labels(
    api, workspace, settings, django_assert_num_queries
):
    settings.VF_TOKEN_CACHE_SECONDS = 0  # the token's lookups on every call, with Redis or without
    _labels_with_tasks(workspace, 1)
    # token, default workspace, count, page (counts are subqueries of the page query)
    with django_assert_num_queries(4):
        assert api.get("/recognition/v2/label/").status_code == 200
    _labels_with_tasks(workspace, 49)
    with django_assert_num_queries(4):
        body = api.get("/recognition/v2/label/?page_size=100").json()
    assert len(body["results"]) == 50
    assert {label["tasks_count"] for label in body["results"]} == {2}


# --- retrieve, update ------------------------------------------------------------------------------


def test_it_answers_with_and_without_the_trailing_slash(api, workspace):
    label = LabelFactory(workspace=workspace, name="l")
    for path in (
        f"/recognition/v2/label/{label.pk}",
        f"/recognition/v2/label/{label.pk}/",
        f"/v2/label/{label.pk}",
    ):
        response = api.get(path)
        assert response.status_code == 200
        assert set(response.json()) == LABEL_FIELDS


def test_it_updates_a_label(api, workspace):
    label = LabelFactory(workspace=workspace, name="old", type=Label.Type.TAG, output_name="o")
    response = api.patch(f"/recognition/v2/label/{label.pk}", {"description": "d"}, format="json")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["description"], response.json()["type"]) == (
        "old",
        "d",
        "tag",
    )
    response = api.put(f"/recognition/v2/label/{label.pk}/", {"name": "new"}, format="json")
    assert response.status_code == 200
    label.refresh_from_db()
    # PUT replaces the texts; a type left out stays.
    assert (label.name, label.description, label.output_name, label.type) == ("new", "", "", "tag")


def test_the_type_of_an_attached_label_is_locked(api, workspace):
    label = LabelFactory(workspace=workspace)
    TaskFactory(workspace=workspace).labels.add(label)
    response = api.patch(f"/recognition/v2/label/{label.pk}", {"type": "tag"}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": label_services.MSG_LABEL_TYPE_LOCKED}
    label.refresh_from_db()
    assert label.type == "category"


def test_a_detached_label_can_change_its_type(api, workspace):
    label = LabelFactory(workspace=workspace)
    response = api.patch(f"/recognition/v2/label/{label.pk}", {"type": "value"}, format="json")
    assert response.status_code == 200
    assert response.json()["type"] == "value"


# --- delete and wipe -------------------------------------------------------------------------------


def test_deleting_a_label_detaches_it_and_keeps_the_images(api, workspace):
    label = LabelFactory(workspace=workspace)
    task = TaskFactory(workspace=workspace)
    task.labels.add(label)
    images = add_images(workspace, [label], 2)
    response = api.delete(f"/recognition/v2/label/{label.pk}")
    assert response.status_code == 204
    assert not Label.objects.filter(pk=label.pk).exists()
    assert not task.labels.exists()
    assert TrainingImage.objects.filter(pk__in=[image.pk for image in images]).count() == 2
    assert all(default_storage.exists(image.file) for image in images)


def test_wiping_a_label_deletes_it_and_its_images_with_their_files(
    api, workspace, django_capture_on_commit_callbacks
):
    label, other = LabelFactory(workspace=workspace), LabelFactory(workspace=workspace)
    wiped = add_images(workspace, [label], 2) + add_images(workspace, [label, other], 1, start=5)
    kept = add_images(workspace, [other], 1, start=9)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/recognition/v2/label/{label.pk}/wipe")
    assert response.status_code == 204
    assert not Label.objects.filter(pk=label.pk).exists()
    assert not TrainingImage.objects.filter(pk__in=[image.pk for image in wiped]).exists()
    assert not any(default_storage.exists(image.file) for image in wiped)
    assert not any(default_storage.exists(image.thumbnail) for image in wiped)
    assert TrainingImage.objects.get() == kept[0]
    assert default_storage.exists(kept[0].file)
    assert Label.objects.filter(pk=other.pk).exists()


def test_wipe_answers_without_the_trailing_slash_and_on_the_vize_prefix(api, workspace):
    label = LabelFactory(workspace=workspace)
    assert api.delete(f"/v2/label/{label.pk}/wipe/").status_code == 204


@pytest.mark.parametrize("suffix", ["", "/wipe"])
def test_the_negative_label_of_a_task_cannot_be_deleted(api, workspace, suffix):
    task = task_services.task_create(workspace=workspace, owner=workspace.owner, name="t", type="multi_label")
    negative = task.negative_labels.get()
    response = api.delete(f"/recognition/v2/label/{negative.pk}{suffix}")
    assert response.status_code == 409
    assert response.json() == {"detail": label_services.MSG_NEGATIVE_LABEL_DELETE}
    assert task.labels.get() == negative


# --- workspaces ------------------------------------------------------------------------------------


def test_a_member_works_in_a_shared_workspace(api, workspace, shared_workspace):
    response = api.post(
        "/recognition/v2/label/", {"name": "team label", "workspace": str(shared_workspace.pk)}, format="json"
    )
    assert response.status_code == 201
    label_id = response.json()["id"]
    assert response.json()["workspace"] == str(shared_workspace.pk)
    assert api.get(f"/recognition/v2/label/{label_id}").status_code == 404
    assert api.get(f"/recognition/v2/label/{label_id}?workspace={shared_workspace.pk}").status_code == 200
    assert api.get(f"/recognition/v2/label/?workspace={shared_workspace.pk}").json()["count"] == 1
    assert api.get("/recognition/v2/label/").json()["count"] == 0
    assert api.delete(f"/recognition/v2/label/{label_id}?workspace={shared_workspace.pk}").status_code == 204


def test_a_workspace_the_caller_is_not_a_member_of_is_a_404(api, workspace, other_user):
    theirs = workspace_services.workspace_ensure_default(user=other_user)
    label = LabelFactory(workspace=theirs)
    assert api.get(f"/recognition/v2/label/?workspace={theirs.pk}").status_code == 404
    assert api.delete(f"/recognition/v2/label/{label.pk}?workspace={theirs.pk}").status_code == 404
    response = api.post(
        "/recognition/v2/label/", {"name": "intruder", "workspace": str(theirs.pk)}, format="json"
    )
    assert response.status_code == 404
    assert not Label.objects.filter(name="intruder").exists()
    assert Label.objects.filter(pk=label.pk).exists()


def test_wiping_a_large_label_is_a_job_in_committed_batches(
    api, workspace, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """Past VF_WIPE_INLINE_MAX images the wipe answers 202 and a job deletes the images in batches,
    each its own transaction with its files deleted after its commit (here the job runs eagerly)."""
    from apps.images import services as image_services

    settings.VF_WIPE_INLINE_MAX = 3
    monkeypatch.setattr(label_services, "WIPE_BATCH", 2)
    label, other = LabelFactory(workspace=workspace), LabelFactory(workspace=workspace)
    wiped = add_images(workspace, [label], 5)
    kept = add_images(workspace, [other], 1, start=9)
    batches = []
    original = image_services.training_image_delete_many

    def counting(*, queryset):
        batches.append(original(queryset=queryset))
        return batches[-1]

    monkeypatch.setattr(image_services, "training_image_delete_many", counting)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/recognition/v2/label/{label.pk}/wipe")

    assert response.status_code == 202, response.content
    assert response.json() == {"id": str(label.pk), "images": 5, "status": "wiping"}
    assert batches == [2, 2, 1]
    assert not Label.objects.filter(pk=label.pk).exists()
    assert not TrainingImage.objects.filter(pk__in=[image.pk for image in wiped]).exists()
    assert not any(default_storage.exists(image.file) for image in wiped)
    assert TrainingImage.objects.get() == kept[0]
