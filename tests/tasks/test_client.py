"""The official Ximilar client (ximilar-client 1.39.0) against a live server: tasks and labels.

Every call goes over HTTP through ``RecognitionClient``, as a customer's script would make it,
once on the caller's default workspace and once with ``workspace=<uuid>``.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image
from ximilar.client import RecognitionClient

from apps.images.models import TrainingImage
from apps.images.services import training_image_ingest
from apps.labels.models import Label
from apps.tasks.models import Task
from apps.workspaces import services as workspace_services

pytestmark = pytest.mark.django_db(transaction=True)


def png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (seed % 256, (seed * 5) % 256, 90)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def team(user, other_user):
    """A workspace of another user's, of which the caller is a member."""
    workspace = workspace_services.workspace_create(owner=other_user, name="Team")
    workspace_services.membership_add(workspace=workspace, actor=other_user, username_or_email=user.username)
    return workspace


@pytest.fixture(params=["default", "team"])
def setup(request, live_server, token, workspace):
    """``(client, workspace it acts on)``: the default workspace, or a shared one by uuid."""
    endpoint = live_server.url + "/"
    if request.param == "default":
        return RecognitionClient(token=token, endpoint=endpoint), workspace
    team = request.getfixturevalue("team")
    return RecognitionClient(token=token, endpoint=endpoint, workspace=str(team.pk)), team


def test_tasks_through_the_client(setup, user):
    client, workspace = setup

    task, status = client.create_task("Cats and dogs", description="pets")
    assert status["status"] == "OK"
    assert (task.name, task.type, task.description) == ("Cats and dogs", "multi_class", "pets")
    assert (task.production_version, task.last_train_status) == (-1, "NOT_TRAINED")
    assert task.workspace == str(workspace.pk)
    stored = Task.objects.get(pk=task.id)
    assert (stored.workspace, stored.owner) == (workspace, user)

    other, _ = client.create_task("Styles", task_type="multi_label")
    assert other.type == "multi_label"

    fetched, status = client.get_task(task.id)
    assert status["status"] == "OK"
    assert (fetched.id, fetched.name, fetched.description) == (task.id, "Cats and dogs", "pets")

    tasks, status = client.get_all_tasks()
    assert status["status"] == "OK"
    assert [t.name for t in tasks] == ["Cats and dogs", "Styles"]

    found, _ = client.get_tasks_by_name("Styles")
    assert [t.id for t in found] == [other.id]
    assert client.get_tasks_by_name("nothing like it")[0] is None

    response = client.remove_task(task.id)
    assert response.status_code == 204
    assert not Task.objects.filter(pk=task.id).exists()
    missing, status = client.get_task(task.id)
    assert missing is None
    assert status == {"status": "Not found."}


def test_task_labels_through_the_client(setup):
    client, workspace = setup
    task, _ = client.create_task("Animals")
    cat, _ = client.create_label("cat")
    dog, _ = client.create_label("dog", description="woof", output_name="Dog")

    result = task.add_label(cat.id)
    assert [label["name"] for label in result["labels"]] == ["cat"]
    task.add_label(dog.id)
    labels, status = task.get_labels()
    assert status["status"] == "OK"
    assert [(label.id, label.name) for label in labels] == [(cat.id, "cat"), (dog.id, "dog")]
    assert task.get_label_by_name("dog")[0].output_name == "Dog"
    assert task.get_negative_label() == (None, {"status": "OK"})

    result = task.detach_label(cat.id)
    assert [label["name"] for label in result["labels"]] == ["dog"]
    assert [label.name for label in task.get_labels()[0]] == ["dog"]
    assert Label.objects.filter(pk=cat.id).exists()

    # A tag cannot join a multi_class task: the client hands back the detail.
    tag, _ = client.create_label("striped", label_type="tag")
    assert task.add_label(tag.id) == {
        "detail": "A multi_class task accepts only category labels; this label is a tag."
    }


def test_a_multi_label_task_has_its_negative_label(setup):
    client, workspace = setup
    task, _ = client.create_task("Styles", task_type="multi_label")
    negative, status = task.get_negative_label()
    assert status["status"] == "OK"
    assert negative.negative_for_task == task.id
    assert (negative.name, negative.type) == ("Styles - negative", "tag")

    tag, _ = client.create_label("boho", label_type="tag")
    task.add_label(tag.id)
    labels, _ = task.get_labels()
    assert sorted(label.name for label in labels) == ["Styles - negative", "boho"]
    assert task.get_negative_label()[0].id == negative.id


def test_labels_through_the_client(setup):
    client, workspace = setup
    cat, status = client.create_label("Cat", description="felines", output_name="cat-out")
    assert status["status"] == "OK"
    assert (cat.name, cat.type, cat.description, cat.output_name) == ("Cat", "category", "felines", "cat-out")
    assert (cat.images_count, cat.tasks_count, cat.negative_for_task) == (0, 0, None)
    tag, _ = client.create_label("Wildcat", label_type="tag")
    assert tag.type == "tag"
    client.create_label("Dog")
    assert Label.objects.get(pk=cat.id).workspace == workspace

    fetched, status = client.get_label(cat.id)
    assert status["status"] == "OK"
    assert (fetched.id, fetched.name, fetched.output_name) == (cat.id, "Cat", "cat-out")

    labels, _ = client.get_all_labels()
    assert [label.name for label in labels] == ["Cat", "Wildcat", "Dog"]

    found, _ = client.get_labels_by_substring("cat")
    assert [label.name for label in found] == ["Cat", "Wildcat"]
    assert client.get_labels_by_substring("zebra") == (None, {"status": "No labels found"})

    by_name, status = client.get_label_by_name("Wildcat")
    assert status["status"] == "OK"
    assert by_name.id == tag.id
    assert client.get_label_by_name("Wildcat", type="category")[0] is None

    response = client.remove_label(cat.id)
    assert response.status_code == 204
    assert not Label.objects.filter(pk=cat.id).exists()
    assert client.get_label(cat.id) == (None, {"status": "label with id not found"})


def test_label_images_and_wipe_through_the_client(setup):
    client, workspace = setup
    label, _ = client.create_label("Cat")
    other, _ = client.create_label("Dog")
    cats = [
        training_image_ingest(workspace=workspace, data=png_bytes(i), label_ids=[label.id]) for i in range(3)
    ]
    dog = training_image_ingest(workspace=workspace, data=png_bytes(50), label_ids=[other.id])

    fetched, _ = client.get_label(label.id)
    assert fetched.images_count == 3
    images, next_page, status = fetched.get_training_images()
    assert status == {"count": 3, "status": "ok"}
    assert next_page is None
    assert sorted(image.id for image in images) == sorted(str(image.pk) for image in cats)

    fetched.wipe()
    assert not Label.objects.filter(pk=label.id).exists()
    assert list(TrainingImage.objects.filter(workspace=workspace)) == [dog]
    assert client.get_label(other.id)[0].images_count == 1
