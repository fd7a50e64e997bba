"""The detection API (detection/v2/): tasks, labels, objects, negative images, box validation."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from apps.detection.models import DetectionLabel, DetectionObject, NegativeImage
from apps.detection.services import MSG_BOX_ORDER, MSG_BOX_OUTSIDE, MSG_BOX_SHAPE
from apps.images.services import training_image_ingest
from apps.tasks.models import Task
from apps.workspaces import services as workspace_services

pytestmark = pytest.mark.django_db
API = "/detection/v2"


def png(width=120, height=80, colour=(20, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def image(workspace):
    return training_image_ingest(workspace=workspace, data=png())


def make_label(api, name="car", **extra):
    response = api.post(f"{API}/label/", {"name": name, **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def make_object(api, label_id, image_id, data, **extra):
    body = {"detection_label": label_id, "image": image_id, "data": data, **extra}
    return api.post(f"{API}/object/", body, format="json")


def test_it_creates_a_detection_task_apart_from_recognition_tasks(api, workspace):
    response = api.post(f"{API}/task", {"name": "Cars", "description": "street"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["description"], body["type"]) == ("Cars", "street", "detection")
    assert (body["production_version"], body["last_train_status"], body["labels"]) == (-1, "NOT_TRAINED", [])
    assert body["workspace"] == str(workspace.pk)
    assert body["train_time_budget"] == 600  # VF_DETECTION_TIME_BUDGET: detectors need minutes
    assert Task.objects.get(pk=body["id"]).type == Task.Type.DETECTION
    # Listed with detection tasks, not with recognition tasks.
    assert [t["id"] for t in api.get(f"{API}/task/").json()["results"]] == [body["id"]]
    assert api.get("/recognition/v2/task/").json()["count"] == 0
    assert api.get(f"/recognition/v2/task/{body['id']}").status_code == 404
    # A recognition task cannot be made a detection task through the recognition API.
    refused = api.post("/recognition/v2/task/", {"name": "x", "type": "detection"}, format="json")
    assert refused.status_code == 400


def test_a_label_answers_the_fields_the_client_reads(api, workspace):
    label = make_label(api, "car", description="cars")
    assert label["color"] == "#FFFFFF"
    assert label["output_name"] == "car"
    assert (label["description"], label["recognition_tasks"]) == ("cars", [])
    named = make_label(api, "truck", color="#FF0000", output_name="lorry")
    assert (named["color"], named["output_name"]) == ("#FF0000", "lorry")
    assert api.get(f"{API}/label/{label['id']}").json()["id"] == label["id"]
    assert api.get(f"{API}/label/").json()["count"] == 2


def test_labels_attach_to_a_task_and_list_by_task(api):
    task = api.post(f"{API}/task/", {"name": "Cars"}, format="json").json()
    car, truck = make_label(api, "car"), make_label(api, "truck")
    answer = api.post(f"{API}/task/{task['id']}/add-label/", {"label_id": car["id"]}, format="json")
    assert answer.status_code == 200, answer.content
    assert [label["id"] for label in answer.json()["labels"]] == [car["id"]]
    listed = api.get(f"{API}/label/?task={task['id']}").json()
    assert [label["id"] for label in listed["results"]] == [car["id"]]
    assert api.get(f"{API}/label/").json()["count"] == 2
    api.post(f"{API}/task/{task['id']}/remove-label", {"label_id": car["id"]}, format="json")
    assert api.get(f"{API}/label/?task={task['id']}").json()["count"] == 0
    assert truck["id"]


def test_a_label_links_recognition_tasks(api):
    recognition = api.post("/recognition/v2/task/", {"name": "Brands"}, format="json").json()
    label = make_label(api)
    linked = api.post(f"{API}/label/{label['id']}/add-task/", {"task_id": recognition["id"]}, format="json")
    assert linked.status_code == 200, linked.content
    assert [t["id"] for t in linked.json()["recognition_tasks"]] == [recognition["id"]]
    unlinked = api.post(
        f"{API}/label/{label['id']}/remove-task", {"task_id": recognition["id"]}, format="json"
    )
    assert unlinked.json()["recognition_tasks"] == []


def test_an_object_is_a_box_in_the_stored_images_pixels(api, image):
    label = make_label(api)
    response = make_object(api, label["id"], str(image.pk), [10, 5, 60, 40], meta_data={"source": "hand"})
    assert response.status_code == 201, response.content
    obj = response.json()
    assert obj["data"] == [10, 5, 60, 40]
    assert obj["meta_data"] == {"source": "hand"}
    assert obj["recognition_labels"] == []
    assert (obj["detection_label"]["id"], obj["detection_label"]["name"]) == (label["id"], "car")
    assert obj["image"]["id"] == str(image.pk)
    assert (obj["image"]["img_width"], obj["image"]["img_height"]) == (120, 80)
    assert obj["image"]["img_path"].startswith("http")
    assert api.get(f"{API}/object/{obj['id']}").json()["data"] == [10, 5, 60, 40]
    assert api.get(f"{API}/object/?image={image.pk}").json()["count"] == 1
    assert api.get(f"{API}/object/?object_detection_label={label['id']}").json()["count"] == 1
    # Floats are accepted; the image's own extent is inside.
    assert make_object(api, label["id"], str(image.pk), [0, 0.5, 120, 80]).status_code == 201


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([10, 10, 5, 20], MSG_BOX_ORDER.format(data=[10, 10, 5, 20])),
        ([10, 10, 20, 10], MSG_BOX_ORDER.format(data=[10, 10, 20, 10])),
        ([-1, 0, 20, 20], MSG_BOX_OUTSIDE.format(data=[-1, 0, 20, 20], width=120, height=80)),
        ([0, 0, 121, 20], MSG_BOX_OUTSIDE.format(data=[0, 0, 121, 20], width=120, height=80)),
        ([0, 0, 20, 81], MSG_BOX_OUTSIDE.format(data=[0, 0, 20, 81], width=120, height=80)),
        ([0, 0, 20], MSG_BOX_SHAPE),
        ("0,0,20,20", MSG_BOX_SHAPE),
        ([0, 0, "a", 20], MSG_BOX_SHAPE),
        ([0, 0, True, 20], MSG_BOX_SHAPE),
    ],
)
def test_it_rejects_a_bad_box_with_the_reason(api, image, data, message):
    label = make_label(api)
    response = make_object(api, label["id"], str(image.pk), data)
    assert response.status_code == 400
    assert response.json() == {"detail": message}
    assert not DetectionObject.objects.exists()


def test_it_rejects_a_non_finite_box(api, image):
    label = make_label(api)
    body = f'{{"detection_label": "{label["id"]}", "image": "{image.pk}", "data": [0, 0, NaN, 20]}}'
    response = api.post(f"{API}/object/", body, content_type="application/json")
    assert response.status_code == 400
    assert not DetectionObject.objects.exists()


def test_the_put_of_the_client_changes_label_box_and_meta_data(api, image):
    car, truck = make_label(api, "car"), make_label(api, "truck")
    obj = make_object(api, car["id"], str(image.pk), [10, 5, 60, 40]).json()
    # change_label echoes the nested image it received.
    body = {"detection_label": truck["id"], "image": obj["image"], "data": [1, 2, 30, 40]}
    changed = api.put(f"{API}/object/{obj['id']}", body, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["detection_label"]["id"], changed.json()["data"]) == (truck["id"], [1, 2, 30, 40])
    meta = api.put(
        f"{API}/object/{obj['id']}",
        {"detection_label": truck["id"], "data": [1, 2, 30, 40], "meta_data": {"a": 1}},
        format="json",
    )
    assert meta.json()["meta_data"] == {"a": 1}
    bad = api.put(f"{API}/object/{obj['id']}", {"data": [1, 2, 300, 40]}, format="json")
    assert bad.status_code == 400
    assert DetectionObject.objects.get(pk=obj["id"]).data == [1, 2, 30, 40]


def test_recognition_labels_on_an_object(api, image):
    recognition_label = api.post(
        "/recognition/v2/label/", {"name": "red", "type": "value"}, format="json"
    ).json()
    obj = make_object(api, make_label(api)["id"], str(image.pk), [10, 5, 60, 40]).json()
    url = f"{API}/object/{obj['id']}"
    added = api.post(f"{url}/add-label/", {"label_id": recognition_label["id"], "value": 0.5}, format="json")
    assert added.json()["recognition_labels"] == [
        {"id": recognition_label["id"], "name": "red", "value": 0.5}
    ]
    updated = api.post(
        f"{url}/update-label/", {"label_id": recognition_label["id"], "value": 2}, format="json"
    )
    assert updated.json()["recognition_labels"][0]["value"] == 2.0
    removed = api.post(f"{url}/remove-label/", {"label_id": recognition_label["id"]}, format="json")
    assert removed.json()["recognition_labels"] == []
    assert api.get(f"{API}/object/?object_labels={recognition_label['id']}").json()["count"] == 0


def test_deleting_a_label_or_an_image_deletes_its_objects(api, workspace, image):
    car, truck = make_label(api, "car"), make_label(api, "truck")
    make_object(api, car["id"], str(image.pk), [10, 5, 60, 40])
    kept = make_object(api, truck["id"], str(image.pk), [1, 1, 9, 9]).json()
    other = training_image_ingest(workspace=workspace, data=png(colour=(1, 2, 3)))
    make_object(api, truck["id"], str(other.pk), [1, 1, 9, 9])
    assert api.delete(f"{API}/label/{car['id']}").status_code == 204
    assert (
        list(DetectionObject.objects.values_list("detection_label_id", flat=True))
        == [DetectionLabel.objects.get(name="truck").pk] * 2
    )
    assert api.delete(f"/recognition/v2/training-image/{image.pk}").status_code == 204
    assert not DetectionObject.objects.filter(pk=kept["id"]).exists()
    assert DetectionObject.objects.count() == 1
    gone = api.delete(f"{API}/object/{kept['id']}")
    assert gone.status_code == 404
    assert "detail" in gone.json()


def test_training_images_filter_by_detection_label(api, workspace, image):
    car = make_label(api, "car")
    training_image_ingest(workspace=workspace, data=png(colour=(9, 9, 9)))
    make_object(api, car["id"], str(image.pk), [10, 5, 60, 40])
    make_object(api, car["id"], str(image.pk), [20, 5, 60, 40])
    page = api.get(f"/recognition/v2/training-image/?detection_labels={car['id']}").json()
    assert [row["id"] for row in page["results"]] == [str(image.pk)]
    assert api.get("/recognition/v2/training-image/").json()["count"] == 2


def test_negative_images_are_added_to_a_task(api, image):
    task = api.post(f"{API}/task/", {"name": "Cars"}, format="json").json()
    response = api.post(f"{API}/task/{task['id']}/add-image/", {"image_id": str(image.pk)}, format="json")
    assert response.status_code == 200, response.content
    assert list(NegativeImage.objects.values_list("task_id", "image_id")) == [
        (Task.objects.get().pk, image.pk)
    ]
    api.post(f"{API}/task/{task['id']}/remove-image/", {"image_id": str(image.pk)}, format="json")
    assert not NegativeImage.objects.exists()


def test_objects_are_found_in_every_workspace_of_the_caller_and_nowhere_else(
    api, other_api, user, other_user
):
    team = workspace_services.workspace_create(owner=other_user, name="Team")
    workspace_services.membership_add(workspace=team, actor=other_user, username_or_email=user.username)
    team_image = training_image_ingest(workspace=team, data=png())
    team_label = other_api.post(
        f"{API}/label/", {"name": "car", "workspace": str(team.pk)}, format="json"
    ).json()
    obj = make_object(other_api, team_label["id"], str(team_image.pk), [1, 1, 10, 10], workspace=str(team.pk))
    assert obj.status_code == 201, obj.content
    object_id = obj.json()["id"]
    # The member reaches it without naming the workspace, as the client calls it.
    assert api.get(f"{API}/object/{object_id}").status_code == 200
    assert api.put(f"{API}/object/{object_id}", {"data": [2, 2, 10, 10]}, format="json").status_code == 200
    # A stranger does not.
    stranger = workspace_services.workspace_ensure_default(user=other_user)
    assert stranger.pk != team.pk
    from tests.conftest import _client_for
    from tests.factories import UserFactory

    outsider = _client_for(UserFactory())
    assert outsider.get(f"{API}/object/{object_id}").status_code == 404
    assert outsider.delete(f"{API}/object/{object_id}").status_code == 404
    assert outsider.get(f"{API}/object/").json()["count"] == 0
    assert DetectionObject.objects.get(pk=object_id).data == [2, 2, 10, 10]


def test_no_token_is_a_401(anon):
    assert anon.get(f"{API}/object/").status_code == 401
    assert anon.post(f"{API}/task/", {"name": "x"}, format="json").status_code == 401


def test_boxes_live_in_the_frame_of_the_image_as_stored(api):
    """A server-side resized upload: img_width / img_height and the boxes agree on the stored size."""
    upload = io.BytesIO(png(1200, 900))
    upload.name = "big.png"
    image = api.post("/recognition/v2/training-image/", {"img_path": upload}, format="multipart").json()
    assert (image["img_width"], image["img_height"]) == (683, 512)  # shorter side scaled to 512
    label = make_label(api)
    assert make_object(api, label["id"], image["id"], [600, 400, 683, 512]).status_code == 201
    outside = make_object(api, label["id"], image["id"], [600, 400, 1200, 900])
    assert outside.status_code == 400


def test_a_label_created_for_a_detection_task_is_attached_to_it(workspace):
    from apps.detection import services as detection_services

    task = Task.objects.create(workspace=workspace, name="cars", type="detection")
    label = detection_services.detection_task_label_create(task=task, name="car")
    assert (label.workspace, label.name, label.color) == (workspace, "car", "#FFFFFF")
    assert list(task.detection_labels.all()) == [label]
