"""Similarity's endpoints on a task: the descriptors computed by the real deployed model (the job
runs inline), "images like this one" by id and by image, the status with the job's progress,
near-duplicate warnings on upload. Every endpoint: 401, another workspace's 404, bad input 400
with its message, and the happy path's exact fields."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image

from apps.images.models import TrainingImage
from apps.images.services import training_image_ingest
from apps.similarity import services
from apps.similarity.models import Descriptor, DescriptorRun
from apps.similarity.serializers import MSG_ONE_SOURCE
from apps.tasks.models import Task
from apps.workspaces import services as workspace_services
from tests.suggestions.conftest import BLUE, GREEN, RED, solid

pytestmark = pytest.mark.django_db

BASE = "/recognition/v2/task/{}/"
IMAGE_FIELDS = {"_id", "distance", "img_path", "thumb_img_path"}


def _images(workspace, colours, seed=0):
    rng = np.random.default_rng(seed)
    return [training_image_ingest(workspace=workspace, data=solid(colour, rng)) for colour in colours]


def _refresh(api, task, capture):
    with capture(execute=True):
        response = api.post(BASE.format(task.pk) + "similar/refresh/")
    assert response.status_code == 202, response.content
    return response


def _search(api, task, records, k=3):
    return api.post(BASE.format(task.pk) + "similar/", {"records": records, "k": k}, format="json")


def _recoded(image: TrainingImage) -> bytes:
    """The same picture, re-encoded as a JPEG at 90 % of its size: other bytes, the same content."""
    with default_storage.open(image.file, "rb") as handle:
        picture = Image.open(io.BytesIO(handle.read())).convert("RGB")
    out = io.BytesIO()
    picture.resize((picture.width * 9 // 10, picture.height * 9 // 10)).save(out, "JPEG", quality=85)
    return out.getvalue()


@pytest.fixture
def described(api, workspace, colour_task, django_capture_on_commit_callbacks):
    """A deployed task whose workspace holds two images of each colour, all described."""
    task = colour_task()
    images = _images(workspace, [RED, RED, GREEN, GREEN, BLUE, BLUE])
    _refresh(api, task, django_capture_on_commit_callbacks)
    return task, images


def test_refresh_describes_every_image_of_the_workspace_and_the_status_says_so(
    api, workspace, colour_task, django_capture_on_commit_callbacks
):
    task = colour_task()
    _images(workspace, [RED, GREEN, BLUE, BLUE])
    response = _refresh(api, task, django_capture_on_commit_callbacks)
    run = response.json()
    assert set(run) == {
        "id",
        "task_id",
        "version",
        "status",
        "progress",
        "done",
        "total",
        "error",
        "created",
        "finished",
    }
    assert run["task_id"] == str(task.pk) and run["version"] == 1

    response = api.get(BASE.format(task.pk) + "similar/status/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"task_id", "ready", "version", "descriptors", "run"}
    assert body["ready"] is True and body["version"] == 1 and body["descriptors"] == 4
    assert body["run"]["status"] == "DONE" and body["run"]["progress"] == 100.0
    assert body["run"]["done"] == 4 and body["run"]["total"] == 4
    stored = Descriptor.objects.first()
    assert len(bytes(stored.vector)) % 2 == 0  # float16
    vector = np.frombuffer(bytes(stored.vector), dtype=np.float16).astype(np.float32)
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-2  # L2-normalised


def test_the_status_before_any_run_is_not_ready(api, colour_task):
    task = colour_task()
    body = api.get(BASE.format(task.pk) + "similar/status/").json()
    assert body == {"task_id": str(task.pk), "ready": False, "version": None, "descriptors": 0, "run": None}


def test_an_image_by_id_finds_its_own_colour_first_and_not_itself(api, described):
    task, (red1, red2, green1, green2, blue1, blue2) = described
    response = _search(api, task, [{"_id": str(red1.pk)}], k=5)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"task_id", "version", "records"} and body["version"] == 1
    record = body["records"][0]
    assert record["_id"] == str(red1.pk) and record["_status"] == {"code": 200, "text": "OK"}
    similar = record["_similar"]
    assert len(similar) == 5 and all(set(row) == IMAGE_FIELDS for row in similar)
    assert similar[0]["_id"] == str(red2.pk)
    assert str(red1.pk) not in {row["_id"] for row in similar}
    distances = [row["distance"] for row in similar]
    assert distances == sorted(distances) and 0 <= distances[0] < distances[-1]


def test_an_uploaded_image_finds_the_images_of_its_colour(api, described):
    task, (_, _, green1, green2, _, _) = described
    data = base64.b64encode(solid(GREEN, np.random.default_rng(9))).decode()
    response = _search(api, task, [{"_base64": data}, {"_url": "http://127.0.0.1:1/nothing.png"}], k=2)
    assert response.status_code == 200, response.content
    found, unread = response.json()["records"]
    assert {row["_id"] for row in found["_similar"]} == {str(green1.pk), str(green2.pk)}
    assert "_base64" not in found
    assert unread["_status"]["code"] == 400 and "_similar" not in unread
    assert unread["_url"] == "http://127.0.0.1:1/nothing.png"


def test_a_search_before_the_descriptors_exist_is_a_409(api, colour_task):
    task = colour_task()
    _images(task.workspace, [RED])
    response = _search(api, task, [{"_id": str(TrainingImage.objects.first().pk)}])
    assert response.status_code == 409
    assert response.json()["detail"] == services.MSG_NO_INDEX


def test_a_search_while_the_descriptors_are_computed_says_how_far_they_are(api, colour_task):
    task = colour_task()
    DescriptorRun.objects.create(
        workspace=task.workspace, task=task, version=task.versions.get(), status="RUNNING", progress=40.0
    )
    response = _search(api, task, [{"_base64": "AAAA"}])
    assert response.status_code == 409
    assert response.json()["detail"] == services.MSG_INDEX_RUNNING.format(progress=40.0)


def test_refresh_with_nothing_deployed_is_a_409(api, colour_task):
    task = colour_task(trained=False)
    response = api.post(BASE.format(task.pk) + "similar/refresh/")
    assert response.status_code == 409
    assert not DescriptorRun.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"records": []}, "records", "Send at least one record."),
        ({"records": [{"_id": "x"}]}, "records", "Must be a valid UUID."),
        ({"records": [{"_base64": "AAAA", "_url": "http://a.b/c.png"}]}, "records", MSG_ONE_SOURCE),
        ({"records": [{}]}, "records", MSG_ONE_SOURCE),
        ({"records": [{"_base64": "AAAA"}], "k": 0}, "k", "Ensure this value is greater than or equal to 1."),
        (
            {"records": [{"_base64": "AAAA"}], "k": 101},
            "k",
            "Ensure this value is less than or equal to 100.",
        ),
        ({"records": [{"_base64": "AAAA"}] * 11}, "records", "At most 10 records per request; got 11."),
    ],
)
def test_bad_input_is_a_400_with_the_reason(api, described, body, field, message):
    task, _ = described
    response = api.post(BASE.format(task.pk) + "similar/", body, format="json")
    assert response.status_code == 400
    assert message in str(response.json()[field])


def test_an_image_of_another_workspace_is_a_404(api, other_user, described):
    task, _ = described
    theirs = workspace_services.workspace_ensure_default(user=other_user)
    their_image = _images(theirs, [RED])[0]
    response = _search(api, task, [{"_id": str(their_image.pk)}])
    assert response.status_code == 404
    assert response.json()["detail"] == services.MSG_IMAGE_NOT_FOUND.format(image_id=their_image.pk)


def test_another_workspaces_task_is_a_404_on_every_route(other_api, described):
    task, (red1, *_) = described
    assert _search(other_api, task, [{"_id": str(red1.pk)}]).status_code == 404
    assert other_api.get(BASE.format(task.pk) + "similar/status/").status_code == 404
    assert other_api.post(BASE.format(task.pk) + "similar/refresh/").status_code == 404
    assert DescriptorRun.objects.count() == 1


def test_no_token_is_a_401(anon, colour_task):
    task = colour_task(trained=False)
    assert anon.post(BASE.format(task.pk) + "similar/", {"records": []}, format="json").status_code == 401
    assert anon.get(BASE.format(task.pk) + "similar/status/").status_code == 401
    assert anon.post(BASE.format(task.pk) + "similar/refresh/").status_code == 401


# --------------------------------------------------------------------------- uploads


def test_an_upload_like_a_stored_image_is_answered_with_a_warning_and_stored(api, described, settings):
    # The threshold on this tiny 32 px model's own scale (the default is chosen for lite0 photos).
    settings.VF_SIMILARITY_DUPLICATE_DISTANCE = 0.09
    task, (red1, red2, *_) = described
    data = base64.b64encode(_recoded(red1)).decode()
    response = api.post("/recognition/v2/training-image/", {"base64": data}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    warned = {w["image_id"]: w for w in body["warnings"]}
    assert str(red1.pk) in warned
    assert set(warned) <= {str(red1.pk), str(red2.pk)}
    assert warned[str(red1.pk)]["code"] == "near_duplicate"
    assert warned[str(red1.pk)]["distance"] <= 0.09
    assert TrainingImage.objects.filter(pk=body["id"]).exists()  # a warning, never a refusal
    # The upload is described and found by the next search.
    assert Descriptor.objects.filter(image_id=body["id"]).exists()
    found = _search(api, task, [{"_id": str(red2.pk)}], k=2).json()["records"][0]["_similar"]
    assert body["id"] in {row["_id"] for row in found}


def test_an_upload_unlike_the_stored_images_has_no_warning_about_them(api, described):
    _, (red1, red2, green1, green2, _, _) = described
    data = base64.b64encode(solid(BLUE, np.random.default_rng(11))).decode()
    body = api.post("/recognition/v2/training-image/", {"base64": data}, format="json").json()
    named = {w["image_id"] for w in body.get("warnings", [])}
    assert not named & {str(red1.pk), str(red2.pk), str(green1.pk), str(green2.pk)}


def test_an_upload_to_a_workspace_without_descriptors_has_no_warnings_key(api, workspace):
    data = base64.b64encode(solid(RED, np.random.default_rng(1))).decode()
    response = api.post("/recognition/v2/training-image/", {"base64": data}, format="json")
    assert response.status_code == 201
    assert "warnings" not in response.json()


def test_a_detection_task_has_no_similarity_route(api, workspace):
    task = Task.objects.create(workspace=workspace, name="boxes", type=Task.Type.DETECTION)
    assert api.get(BASE.format(task.pk) + "similar/status/").status_code == 404
