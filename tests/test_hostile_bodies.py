"""Hostile request bodies: each is a clear JSON 400, changes nothing, and is never a 500.

Malformed and absurdly nested JSON, wrong types in every field, nulls, a body that is not an object,
huge ``meta_data`` (cap: ``VF_MAX_META_DATA_BYTES``, 64 KiB serialized), a bulk update naming more
than ``MAX_IDS_PER_CALL`` (1000) ids in one list, and long names (255 characters at most; any
unicode is fine, a NUL character is not).
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from apps.core.fields import MSG_META_DATA_TOO_LARGE
from apps.images.models import ImageLabel, TrainingImage
from apps.images.serializers import MAX_IDS_PER_CALL, MSG_TOO_MANY_IDS
from apps.images.services import training_image_ingest
from apps.labels.models import Label
from apps.tasks.models import Task
from apps.training.models import ModelVersion
from apps.workspaces.models import Workspace
from tests.factories import LabelFactory, TaskFactory

PREFIX = "/recognition/v2"


def _png(color=(10, 200, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def objects(workspace):
    task = TaskFactory(workspace=workspace)
    label = LabelFactory(workspace=workspace)
    image = training_image_ingest(workspace=workspace, data=_png(), label_ids=[label.pk], meta_data={"a": 1})
    return {"task": task, "label": label, "image": image}


def snapshot() -> dict:
    """Every row the API could change, as plain values."""
    return {
        "tasks": sorted(Task.objects.values_list("id", "name", "type", "description")),
        "labels": sorted(Label.objects.values_list("id", "name", "type", "description", "output_name")),
        "images": sorted(
            (str(i), json.dumps(m, sort_keys=True), t, r)
            for i, m, t, r in TrainingImage.objects.values_list("id", "meta_data", "test_image", "real")
        ),
        "image_labels": sorted(ImageLabel.objects.values_list("image_id", "label_id", "value")),
        "workspaces": sorted(
            (str(i), n, json.dumps(m, sort_keys=True))
            for i, n, m in Workspace.objects.values_list("id", "name", "meta_data")
        ),
        "models": ModelVersion.objects.count(),
    }


def endpoints(objects, workspace) -> list[tuple[str, str]]:
    """(method, path) of every operation that takes a JSON body."""
    task, label, image = objects["task"].pk, objects["label"].pk, objects["image"].pk
    return [
        ("post", f"{PREFIX}/task/"),
        ("put", f"{PREFIX}/task/{task}/"),
        ("patch", f"{PREFIX}/task/{task}/"),
        ("post", f"{PREFIX}/task/{task}/add-label/"),
        ("post", f"{PREFIX}/task/{task}/remove-label/"),
        ("post", f"{PREFIX}/label/"),
        ("put", f"{PREFIX}/label/{label}/"),
        ("patch", f"{PREFIX}/label/{label}/"),
        ("post", f"{PREFIX}/training-image/"),
        ("put", f"{PREFIX}/training-image/{image}/"),
        ("patch", f"{PREFIX}/training-image/{image}/"),
        ("post", f"{PREFIX}/training-image/{image}/add-label/"),
        ("post", f"{PREFIX}/training-image/{image}/remove-label/"),
        ("post", f"{PREFIX}/training-image/{image}/update-label/"),
        ("post", f"{PREFIX}/training-image/update"),
        ("post", f"{PREFIX}/classify/"),
        ("post", "/v1/classify/"),
        ("post", "/account/v2/workspace/"),
        ("patch", f"/account/v2/workspace/{workspace.pk}/"),
        ("post", f"/account/v2/workspace/{workspace.pk}/members/"),
    ]


def send(api, method: str, path: str, raw: str):
    return getattr(api, method)(path, data=raw, content_type="application/json")


def assert_clear_400(response) -> dict:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and body
    return body


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "x",',  # truncated
        "{'name': 'x'}",  # not JSON quotes
        '{"name": "x"} trailing',
        "\xff\xfe garbage",
        '{"name": NaN}',
        "[" * 100_000 + "]" * 100_000,  # nesting deeper than any parser's stack
        '{"a":' * 50_000 + "1" + "}" * 50_000,
    ],
    ids=["truncated", "single-quotes", "trailing", "garbage", "nan", "deep-list", "deep-object"],
)
def test_malformed_json_is_a_clear_400_on_every_endpoint(api, workspace, objects, raw):
    before = snapshot()
    for method, path in endpoints(objects, workspace):
        body = assert_clear_400(send(api, method, path, raw))
        assert "detail" in body, (method, path, body)
    assert snapshot() == before


@pytest.mark.parametrize("raw", ["[]", "[1, 2]", '"a string"', "42", "true", "null"])
def test_a_body_that_is_not_an_object_is_a_clear_400_on_every_endpoint(api, workspace, objects, raw):
    before = snapshot()
    for method, path in endpoints(objects, workspace):
        response = send(api, method, path, raw)
        # PATCH with nothing to change is allowed to answer 200 for an empty body; anything that is
        # not an object must still be refused.
        assert_clear_400(response)
    assert snapshot() == before


WRONG_TYPES = [
    ("post", "task/", {"name": ["a"]}, "name"),
    ("post", "task/", {"name": {"a": 1}}, "name"),
    ("post", "task/", {"name": None}, "name"),
    ("post", "task/", {"name": "t", "type": 3}, "type"),
    ("post", "task/", {"name": "t", "keep_deployed_version": "maybe"}, "keep_deployed_version"),
    ("post", "task/", {"name": "t", "input_size": "big"}, "input_size"),
    ("post", "task/", {"name": "t", "input_size": 10**30}, "input_size"),
    ("post", "task/", {"name": "t", "description": ["x"]}, "description"),
    ("patch", "task/{task}/", {"production_version": "latest"}, "production_version"),
    ("patch", "task/{task}/", {"production_version": [1]}, "production_version"),
    # DRF reads an int as UUID(int=n) (a well-formed id, then 404); a float or a huge int is not one.
    ("post", "task/{task}/add-label/", {"label_id": 12.5}, "label_id"),
    ("post", "task/{task}/add-label/", {"label_id": 10**40}, "label_id"),
    ("post", "task/{task}/add-label/", {"label_id": None}, "label_id"),
    ("post", "task/{task}/add-label/", {"label_id": ["{label}"]}, "label_id"),
    # DRF's CharField takes a number as its text ("5.5"), by design; a bool or a container is refused.
    ("post", "label/", {"name": True, "type": "category"}, "name"),
    ("post", "label/", {"name": "l", "type": ["tag"]}, "type"),
    ("post", "label/", {"name": "l", "output_name": {"x": 1}}, "output_name"),
    ("patch", "label/{label}/", {"name": None}, "name"),
    ("post", "training-image/", {"base64": False}, "base64"),
    ("post", "training-image/", {"base64": "{png}", "noresize": "very"}, "noresize"),
    ("post", "training-image/", {"base64": "{png}", "meta_data": [1, 2]}, "meta_data"),
    ("post", "training-image/", {"base64": "{png}", "meta_data": "not json"}, "meta_data"),
    ("post", "training-image/", {"base64": "{png}", "labels": {"a": 1}}, "labels"),
    ("post", "training-image/", {"base64": "{png}", "labels": ["not-a-uuid"]}, "labels"),
    ("post", "training-image/", {"base64": "{png}", "test_image": [True]}, "test_image"),
    ("patch", "training-image/{image}/", {"test_image": "perhaps"}, "test_image"),
    ("patch", "training-image/{image}/", {"real": {"a": 1}}, "real"),
    ("patch", "training-image/{image}/", {"meta_data": 7}, "meta_data"),
    ("patch", "training-image/{image}/", {"meta_data": ["a"]}, "meta_data"),
    ("post", "training-image/{image}/add-label/", {"label_id": "{label}", "value": "high"}, "value"),
    ("post", "training-image/{image}/update-label/", {"label_id": "{label}", "value": None}, "value"),
    ("post", "training-image/update", {"images": {"a": 1}}, "images"),
    ("post", "training-image/update", {"images": ["{image}"], "mark-test": "yes please"}, "mark-test"),
    ("post", "training-image/update", {"images": ["{image}"], "labels-add": [None, 3.5]}, "labels-add"),
    ("post", "training-image/update", {"images": None}, "images"),
    ("post", "classify/", {"task_id": "{task}", "records": {"_url": "x"}}, "records"),
    # A record that is not an object is that record's own 400 _status (API.md), not the call's.
    ("post", "classify/", {"task_id": "{task}", "records": [{"_base64": "x"}], "version": "v2"}, "version"),
    (
        "post",
        "classify/",
        {"task_id": "{task}", "records": [{"_base64": "x"}], "threshold": "hi"},
        "threshold",
    ),
    ("post", "classify/", {"task_id": 3.5, "records": [{"_base64": "x"}]}, "task_id"),
    ("post", "/account/v2/workspace/", {"name": "w", "meta_data": "x" * 10}, "meta_data"),
    ("post", "/account/v2/workspace/", {"name": ["w"]}, "name"),
]


def _fill(value, objects, png_b64):
    if isinstance(value, str):
        if value == "{png}":
            return png_b64
        return value.format(**{k: v.pk for k, v in objects.items()})
    if isinstance(value, list):
        return [_fill(item, objects, png_b64) for item in value]
    if isinstance(value, dict):
        return {k: _fill(v, objects, png_b64) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "body", "field"), WRONG_TYPES)
def test_a_field_of_the_wrong_type_is_a_400_naming_the_field(api, objects, method, path, body, field):
    import base64

    png_b64 = base64.b64encode(_png((1, 2, 3))).decode()
    url = path if path.startswith("/") else f"{PREFIX}/{_fill(path, objects, png_b64)}"
    before = snapshot()
    response = send(api, method, url, json.dumps(_fill(body, objects, png_b64)))
    answer = assert_clear_400(response)
    assert field in answer, answer
    assert snapshot() == before


# --- meta_data ------------------------------------------------------------------------------------


def test_meta_data_up_to_the_cap_is_stored(api, objects, settings):
    meta = {"notes": "é" * 20_000, "nested": {"list": list(range(100))}}
    response = api.patch(
        f"{PREFIX}/training-image/{objects['image'].pk}/", {"meta_data": meta}, format="json"
    )
    assert response.status_code == 200, response.content[:200]
    assert response.json()["meta_data"] == meta


@pytest.mark.parametrize(
    "meta",
    [
        {"blob": "x" * (64 * 1024)},
        {"many": list(range(20_000))},
        {f"k{i}": i for i in range(10_000)},
    ],
    ids=["long-string", "long-list", "many-keys"],
)
def test_meta_data_over_64_kib_is_refused_on_every_endpoint_that_takes_it(api, workspace, objects, meta):
    import base64

    before = snapshot()
    image = objects["image"]
    png_b64 = base64.b64encode(_png((5, 6, 7))).decode()
    calls = [
        ("patch", f"{PREFIX}/training-image/{image.pk}/", {"meta_data": meta}),
        ("put", f"{PREFIX}/training-image/{image.pk}/", {"meta_data": meta}),
        ("post", f"{PREFIX}/training-image/", {"base64": png_b64, "meta_data": meta}),
        ("post", "/account/v2/workspace/", {"name": "big", "meta_data": meta}),
        ("patch", f"/account/v2/workspace/{workspace.pk}/", {"meta_data": meta}),
    ]
    for method, path, body in calls:
        answer = assert_clear_400(send(api, method, path, json.dumps(body)))
        assert answer == {"meta_data": [MSG_META_DATA_TOO_LARGE.format(limit=64 * 1024)]}, (path, answer)
    assert snapshot() == before


def test_meta_data_with_a_nul_character_is_refused(api, objects):
    # PostgreSQL's jsonb cannot store \u0000: refusing it here keeps SQLite and PostgreSQL alike.
    before = snapshot()
    for meta in ({"a": "x\u0000y"}, {"a\u0000": 1}, {"a": ["ok", {"b": "\u0000"}]}):
        response = api.patch(
            f"{PREFIX}/training-image/{objects['image'].pk}/", {"meta_data": meta}, format="json"
        )
        assert "meta_data" in assert_clear_400(response)
    assert snapshot() == before


# --- bulk update ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["images", "labels", "labels-add", "labels-remove"])
def test_a_bulk_update_with_more_than_1000_ids_in_a_list_is_refused(api, objects, field):
    import uuid

    before = snapshot()
    ids = [str(uuid.uuid4()) for _ in range(10_000)]
    body = {"images": [str(objects["image"].pk)], field: ids, "mark-test": True}
    answer = assert_clear_400(api.post(f"{PREFIX}/training-image/update", body, format="json"))
    assert answer == {field: [MSG_TOO_MANY_IDS.format(limit=MAX_IDS_PER_CALL)]}
    assert snapshot() == before


def test_a_bulk_update_of_exactly_1000_ids_is_checked_not_refused(api, objects):
    import uuid

    ids = [str(objects["image"].pk)] + [str(uuid.uuid4()) for _ in range(MAX_IDS_PER_CALL - 1)]
    response = api.post(f"{PREFIX}/training-image/update", {"images": ids, "mark-test": True}, format="json")
    # Within the cap: the ids are looked up, and unknown ones are a 404 (nothing changes).
    assert response.status_code == 404
    assert TrainingImage.objects.get(pk=objects["image"].pk).test_image is False


def test_a_bulk_update_with_10000_comma_separated_ids_is_refused_too(api, objects):
    import uuid

    ids = ",".join(str(uuid.uuid4()) for _ in range(10_000))
    answer = assert_clear_400(
        api.post(f"{PREFIX}/training-image/update", {"images": ids, "mark-test": True}, format="json")
    )
    assert answer == {"images": [MSG_TOO_MANY_IDS.format(limit=MAX_IDS_PER_CALL)]}


# --- names ----------------------------------------------------------------------------------------

UNICODE_NAMES = ["猫と犬", "Ωμέγα", "😀 smile 🐈‍⬛", "שלום", "e\u0301\u0301", "x" * 255, "🐈" * 255]


@pytest.mark.parametrize("name", UNICODE_NAMES)
def test_unicode_names_up_to_255_characters_are_kept_as_sent(api, objects, name):
    for path in ("task/", "label/"):
        response = api.post(f"{PREFIX}/{path}", {"name": name}, format="json")
        assert response.status_code == 201, response.content[:200]
        assert response.json()["name"] == name
    response = api.post("/account/v2/workspace/", {"name": name}, format="json")
    assert response.status_code == 201
    assert response.json()["name"] == name


@pytest.mark.parametrize("name", ["x" * 256, "🐈" * 256, "y" * 100_000, "a\u0000b", ""])
def test_names_too_long_empty_or_with_nul_are_refused(api, workspace, objects, name):
    before = snapshot()
    calls = [
        ("post", f"{PREFIX}/task/", {"name": name}),
        ("patch", f"{PREFIX}/task/{objects['task'].pk}/", {"name": name}),
        ("post", f"{PREFIX}/label/", {"name": name}),
        ("patch", f"{PREFIX}/label/{objects['label'].pk}/", {"name": name}),
        ("post", f"{PREFIX}/label/", {"name": "ok", "output_name": name or "\u0000"}),
        ("post", "/account/v2/workspace/", {"name": name}),
        ("patch", f"/account/v2/workspace/{workspace.pk}/", {"name": name}),
    ]
    for method, path, body in calls:
        answer = assert_clear_400(send(api, method, path, json.dumps(body)))
        assert set(answer) & {"name", "output_name"}, (path, answer)
    assert snapshot() == before


def test_multipart_uploads_are_held_to_the_same_caps(api, objects):
    import uuid

    from django.core.files.uploadedfile import SimpleUploadedFile

    before = snapshot()
    too_big = json.dumps({"blob": "x" * (64 * 1024)})
    upload = SimpleUploadedFile("a.png", _png((9, 9, 9)), content_type="image/png")
    response = api.post(
        f"{PREFIX}/training-image/", {"img_path": upload, "meta_data": too_big}, format="multipart"
    )
    assert assert_clear_400(response) == {"meta_data": [MSG_META_DATA_TOO_LARGE.format(limit=64 * 1024)]}
    ids = ",".join(str(uuid.uuid4()) for _ in range(MAX_IDS_PER_CALL + 1))
    upload = SimpleUploadedFile("a.png", _png((9, 9, 9)), content_type="image/png")
    response = api.post(f"{PREFIX}/training-image/", {"img_path": upload, "labels": ids}, format="multipart")
    assert assert_clear_400(response) == {"labels": [MSG_TOO_MANY_IDS.format(limit=MAX_IDS_PER_CALL)]}
    upload = SimpleUploadedFile("a.png", _png((9, 9, 9)), content_type="image/png")
    response = api.post(
        f"{PREFIX}/training-image/", {"img_path": upload, "meta_data": "[[[["}, format="multipart"
    )
    assert "meta_data" in assert_clear_400(response)
    assert snapshot() == before
