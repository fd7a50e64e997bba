"""The training-image endpoints: ownership, validation and the exact response shapes."""

from __future__ import annotations

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.images.models import ImageLabel, TrainingImage
from apps.labels.models import Label
from apps.workspaces import services as workspace_services
from tests.pictures import jpeg_with_orientation, picture

from .conftest import b64, media_files

pytestmark = pytest.mark.django_db

BASE = "/recognition/v2/training-image/"
FIELDS = {
    "id",
    "img_path",
    "thumb_img_path",
    "img_width",
    "img_height",
    "meta_data",
    "test_image",
    "real",
    "verifyCount",
    "workspace",
    "labels",
    "created",
}


def url(image=None, action=""):
    if image is None:
        return BASE
    return f"{BASE}{image.id if hasattr(image, 'id') else image}/{action + '/' if action else ''}"


# --- upload -----------------------------------------------------------------------------------------


def test_it_uploads_a_multipart_file_with_labels_and_meta_data(api, workspace, make_label):
    cat, dog = make_label("cat"), make_label("dog")
    upload = SimpleUploadedFile("cat.jpg", picture(size=(1024, 768)), content_type="image/jpeg")
    response = api.post(
        BASE,
        {
            "img_path": upload,
            "meta_data": '{"k": "v"}',
            "labels": [str(cat.id), str(dog.id)],
            "test_image": "true",
        },
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == FIELDS
    assert (body["img_width"], body["img_height"]) == (683, 512)  # shorter side down to 512
    assert body["meta_data"] == {"k": "v"}
    assert body["test_image"] is True and body["real"] is False and body["verifyCount"] == 0
    assert body["workspace"] == str(workspace.id)
    assert sorted((item["name"], item["type"], item["value"]) for item in body["labels"]) == [
        ("cat", "category", None),
        ("dog", "category", None),
    ]
    assert set(body["labels"][0]) == {"id", "name", "type", "value"}
    assert body["img_path"].startswith("http://testserver/media/") and "sig=" in body["img_path"]
    assert body["thumb_img_path"].startswith("http://testserver/media/")


def test_it_accepts_labels_as_a_json_list_string_in_multipart(api, make_label):
    cat = make_label("cat")
    upload = SimpleUploadedFile("a.png", picture(fmt="PNG"), content_type="image/png")
    response = api.post(BASE, {"img_path": upload, "labels": f'["{cat.id}"]'}, format="multipart")
    assert response.status_code == 201, response.json()
    assert [item["id"] for item in response.json()["labels"]] == [str(cat.id)]


@pytest.mark.parametrize("prefix", ["", "data:image/jpeg;base64,"])
def test_it_uploads_base64_with_or_without_a_data_prefix(api, workspace, prefix):
    data = picture(size=(300, 200))
    response = api.post(
        BASE, {"base64": prefix + b64(data), "meta_data": {"product_id": "24618"}}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["img_width"], body["img_height"]) == (300, 200)  # never upscaled
    assert body["meta_data"] == {"product_id": "24618"}


def test_noresize_keeps_the_original_size_and_bytes(api, settings):
    data = picture(size=(1200, 900))
    response = api.post(BASE, {"base64": b64(data), "noresize": True}, format="json")
    assert response.status_code == 201
    assert (response.json()["img_width"], response.json()["img_height"]) == (1200, 900)
    image = TrainingImage.objects.get()
    assert (settings.MEDIA_ROOT / image.file).read_bytes() == data


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_it_accepts_every_listed_format(api, fmt):
    response = api.post(BASE, {"base64": b64(picture(size=(50, 40), fmt=fmt))}, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["img_width"], response.json()["img_height"]) == (50, 40)


def test_it_applies_the_exif_orientation(api):
    response = api.post(BASE, {"base64": b64(jpeg_with_orientation(size=(80, 40)))}, format="json")
    assert response.status_code == 201
    assert (response.json()["img_width"], response.json()["img_height"]) == (40, 80)


def test_it_uploads_into_the_workspace_named_in_the_body(api, user):
    team = workspace_services.workspace_create(owner=user, name="Team")
    response = api.post(BASE, {"base64": b64(picture()), "workspace": str(team.id)}, format="json")
    assert response.status_code == 201
    assert response.json()["workspace"] == str(team.id)
    assert TrainingImage.objects.get().workspace == team


def test_the_same_bytes_twice_in_a_workspace_answer_400_naming_the_image(api, user):
    data = b64(picture())
    first = api.post(BASE, {"base64": data}, format="json").json()
    response = api.post(BASE, {"base64": data}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"Training image with this content already exists (image ID <{first['id']}>)"
    }
    # Another workspace may hold the same image.
    team = workspace_services.workspace_create(owner=user, name="Team")
    assert api.post(BASE, {"base64": data, "workspace": str(team.id)}, format="json").status_code == 201


def test_upload_without_a_token_is_401_and_stores_nothing(anon, settings):
    response = anon.post(BASE, {"base64": b64(picture())}, format="json")
    assert response.status_code == 401
    assert not TrainingImage.objects.exists() and media_files(settings) == []


def test_upload_into_someone_elses_workspace_is_404(api, other_user, settings):
    theirs = workspace_services.workspace_ensure_default(user=other_user)
    response = api.post(BASE, {"base64": b64(picture()), "workspace": str(theirs.id)}, format="json")
    assert response.status_code == 404
    assert not TrainingImage.objects.exists() and media_files(settings) == []


def test_upload_with_a_label_of_another_workspace_is_404_and_stores_nothing(api, other_user, settings):
    theirs = Label.objects.create(
        workspace=workspace_services.workspace_ensure_default(user=other_user), name="x"
    )
    response = api.post(BASE, {"base64": b64(picture()), "labels": [str(theirs.id)]}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Label not found."}
    assert not TrainingImage.objects.exists() and media_files(settings) == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "Send one of img_path (file), base64 or url."),
        (
            {"base64": "x", "url": "http://example.com/a.jpg"},
            "Send only one of img_path (file), base64 or url.",
        ),
    ],
)
def test_it_needs_exactly_one_source(api, payload, message):
    response = api.post(BASE, payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": message}


def test_meta_data_must_be_an_object(api):
    response = api.post(BASE, {"base64": b64(picture()), "meta_data": [1, 2]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"meta_data": ["meta_data must be a JSON object."]}


def test_upload_answers_on_the_vize_prefix_and_without_the_slash(api):
    assert api.post("/v2/training-image", {"base64": b64(picture())}, format="json").status_code == 201


# --- list and filters ---------------------------------------------------------------------------------


def test_list_is_paginated_and_scoped_to_the_workspace(api, make_image, other_user, make_label):
    mine = make_image()
    make_image(workspace=workspace_services.workspace_ensure_default(user=other_user))
    response = api.get(BASE)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [item["id"] for item in body["results"]] == [str(mine.id)]
    assert set(body["results"][0]) == FIELDS


def test_list_without_a_token_is_401(anon):
    assert anon.get(BASE).status_code == 401


def test_list_of_someone_elses_workspace_is_404(api, other_user):
    theirs = workspace_services.workspace_ensure_default(user=other_user)
    assert api.get(BASE, {"workspace": str(theirs.id)}).status_code == 404


def test_filters(api, make_image, make_label, task):
    cat, dog, size = make_label("cat"), make_label("dog"), make_label("size", Label.Type.VALUE)
    task.labels.add(cat)
    a = make_image(labels=[cat.id], test_image=True)
    b = make_image(labels=[dog.id], real=True)
    c = make_image()
    d = make_image(values={size.id: 3.5})

    def ids(**params):
        response = api.get(BASE, params)
        assert response.status_code == 200, response.json()
        return {item["id"] for item in response.json()["results"]}

    assert ids(labels=str(cat.id)) == {str(a.id)}
    assert ids(labels=f"{cat.id},{dog.id}") == {str(a.id), str(b.id)}
    assert ids(label=str(dog.id)) == {str(b.id)}
    assert ids(not_labels=str(cat.id)) == {str(b.id), str(c.id), str(d.id)}
    assert ids(test="true") == {str(a.id)}
    assert ids(test="false") == {str(b.id), str(c.id), str(d.id)}
    assert ids(real="True") == {str(b.id)}
    assert ids(task=str(task.id)) == {str(a.id)}
    assert ids(unlabelled="true") == {str(c.id)}
    assert ids(verified="0") == {str(a.id), str(b.id), str(c.id), str(d.id)}
    assert ids(**{f"label_value_{size.id}__gte": "3.5", f"label_value_{size.id}__lte": "3.5"}) == {str(d.id)}
    assert ids(**{f"label_value_{size.id}__gte": "4"}) == set()


@pytest.mark.parametrize(
    ("params", "key"),
    [({"labels": "not-a-uuid"}, "labels"), ({f"label_value_{uuid.uuid4()}__gte": "many"}, None)],
)
def test_bad_filter_values_are_400(api, params, key):
    response = api.get(BASE, params)
    assert response.status_code == 400
    assert (key or next(iter(params))) in response.json()


@pytest.mark.parametrize("rows", [1, 50])
def test_list_uses_a_constant_number_of_queries(api, make_image, make_label, rows, django_assert_num_queries):
    labels = [make_label(f"l{i}") for i in range(3)]
    for _ in range(rows):
        make_image(labels=[label.id for label in labels])
    # session-less token auth (1), workspace (1), count (1), page (1), labels prefetch (1)
    with django_assert_num_queries(5):
        response = api.get(BASE, {"page_size": 100})
    assert response.json()["count"] == rows
    assert all(len(item["labels"]) == 3 for item in response.json()["results"])


# --- detail ---------------------------------------------------------------------------------------


def test_get_one_image_with_its_labels_and_values(api, make_image, make_label):
    size = make_label("size", Label.Type.VALUE)
    image = make_image(values={size.id: 2.0})
    response = api.get(url(image))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == FIELDS
    assert body["labels"] == [{"id": str(size.id), "name": "size", "type": "value", "value": 2.0}]
    assert api.get(f"{BASE}{image.id}").status_code == 200  # without the trailing slash


def test_detail_without_a_token_is_401(anon, make_image):
    image = make_image()
    assert anon.get(url(image)).status_code == 401
    assert anon.put(url(image), {"meta_data": {}}, format="json").status_code == 401
    assert anon.delete(url(image)).status_code == 401


def test_someone_elses_image_is_404_and_unchanged(other_api, make_image, make_label):
    label = make_label()
    image = make_image(meta_data={"a": 1})
    assert other_api.get(url(image)).status_code == 404
    assert other_api.put(url(image), {"meta_data": {}}, format="json").status_code == 404
    assert other_api.patch(url(image), {"test_image": True}, format="json").status_code == 404
    assert other_api.delete(url(image)).status_code == 404
    for action in ("add-label", "remove-label", "update-label", "update-value"):
        response = other_api.post(url(image, action), {"label_id": str(label.id), "value": 1}, format="json")
        assert response.status_code == 404, action
    image.refresh_from_db()
    assert image.meta_data == {"a": 1} and image.test_image is False
    assert TrainingImage.objects.filter(pk=image.pk).exists()


def test_put_and_patch_change_only_the_given_fields(api, make_image):
    image = make_image(meta_data={"a": 1})
    response = api.put(url(image), {"meta_data": {"b": 2}}, format="json")
    assert response.status_code == 200
    assert response.json()["meta_data"] == {"b": 2}
    response = api.patch(url(image), {"test_image": True, "real": True}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["meta_data"], body["test_image"], body["real"]) == ({"b": 2}, True, True)


def test_put_rejects_meta_data_that_is_not_an_object(api, make_image):
    image = make_image(meta_data={"a": 1})
    response = api.put(url(image), {"meta_data": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"meta_data": ["meta_data must be a JSON object."]}
    image.refresh_from_db()
    assert image.meta_data == {"a": 1}


def test_delete_removes_the_row_and_its_files(api, make_image, settings, django_capture_on_commit_callbacks):
    image = make_image()
    assert len(media_files(settings)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(url(image))
    assert response.status_code == 204
    assert not TrainingImage.objects.exists()
    assert media_files(settings) == []


def test_delete_many_removes_rows_and_files(
    workspace, make_image, settings, django_capture_on_commit_callbacks
):
    from apps.images.services import training_image_delete_many

    keep = make_image()
    make_image(), make_image()
    with django_capture_on_commit_callbacks(execute=True):
        deleted = training_image_delete_many(queryset=TrainingImage.objects.exclude(pk=keep.pk))
    assert deleted == 2
    assert list(TrainingImage.objects.all()) == [keep]
    assert len(media_files(settings)) == 2


# --- labels on an image -----------------------------------------------------------------------------


def test_add_and_remove_a_label(api, make_image, make_label):
    image, cat = make_image(), make_label("cat")
    response = api.post(url(image, "add-label"), {"label_id": str(cat.id)}, format="json")
    assert response.status_code == 200
    assert response.json()["labels"] == [
        {"id": str(cat.id), "name": "cat", "type": "category", "value": None}
    ]
    response = api.post(url(image, "remove-label"), {"label_id": str(cat.id)}, format="json")
    assert response.status_code == 200
    assert response.json()["labels"] == []


def test_add_label_takes_form_fields_like_the_curl_examples(api, make_image, make_label):
    image, cat = make_image(), make_label("cat")
    response = api.post(f"{BASE}{image.id}/add-label", {"label_id": str(cat.id)}, format="multipart")
    assert response.status_code == 200
    assert ImageLabel.objects.filter(image=image, label=cat).exists()


def test_a_value_label_needs_a_value_and_update_value_changes_it(api, make_image, make_label):
    image, size = make_image(), make_label("size", Label.Type.VALUE)
    response = api.post(url(image, "add-label"), {"label_id": str(size.id)}, format="json")
    assert response.status_code == 409  # the body is well formed; the label's type asks for more
    assert response.json() == {"detail": "A value label needs a numeric value."}
    assert (
        api.post(url(image, "add-label"), {"label_id": str(size.id), "value": 1.5}, format="json").status_code
        == 200
    )
    for action, value in (("update-label", 2.5), ("update-value", 3.0)):
        response = api.post(
            url(image, action), {"label_id": str(size.id), "value": value}, format="multipart"
        )
        assert response.status_code == 200
        assert response.json()["labels"][0]["value"] == value


def test_a_category_takes_no_value(api, make_image, make_label):
    image, cat = make_image(), make_label("cat")
    response = api.post(url(image, "add-label"), {"label_id": str(cat.id), "value": 1}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "Only a value label takes a value."}


def test_update_label_needs_the_label_on_the_image(api, make_image, make_label):
    image, size = make_image(), make_label("size", Label.Type.VALUE)
    response = api.post(url(image, "update-label"), {"label_id": str(size.id), "value": 1}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "This label is not on the image."}
    response = api.post(url(image, "update-label"), {"label_id": str(size.id)}, format="json")
    assert response.status_code == 400
    assert "value" in response.json()


@pytest.mark.parametrize("action", ["add-label", "remove-label", "update-label"])
def test_a_label_of_another_workspace_is_404_and_changes_nothing(api, make_image, other_user, action):
    image = make_image()
    theirs = Label.objects.create(
        workspace=workspace_services.workspace_ensure_default(user=other_user), name="x", type="value"
    )
    response = api.post(url(image, action), {"label_id": str(theirs.id), "value": 1}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Label not found."}
    assert not ImageLabel.objects.exists()


@pytest.mark.parametrize("action", ["add-label", "remove-label", "update-label", "update-value"])
def test_label_actions_need_a_token_and_a_label_id(api, anon, make_image, action):
    image = make_image()
    assert anon.post(url(image, action), {"label_id": str(uuid.uuid4())}, format="json").status_code == 401
    response = api.post(url(image, action), {}, format="json")
    assert response.status_code == 400
    assert "label_id" in response.json()


# --- bulk update ------------------------------------------------------------------------------------


def test_bulk_update_marks_and_relabels_images(api, make_image, make_label):
    cat, dog = make_label("cat"), make_label("dog")
    a, b = make_image(labels=[cat.id]), make_image()
    other = make_image()
    response = api.post(
        BASE + "update",
        {
            "images": [str(b.id)],
            "labels": [str(cat.id)],
            "labels-add": [str(dog.id)],
            "labels-remove": [str(cat.id)],
            "mark-test": True,
            "mark-real": True,
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json() == {"count": 2}
    for image in (a, b):
        image.refresh_from_db()
        assert image.test_image and image.real
        assert list(image.labels.all()) == [dog]
    other.refresh_from_db()
    assert not other.test_image and not other.labels.exists()
    response = api.post(
        BASE + "update/", {"images": [str(a.id)], "unmark-test": True, "unmark-real": True}, format="json"
    )
    a.refresh_from_db()
    assert response.status_code == 200 and not a.test_image and not a.real


def test_bulk_update_refuses_foreign_ids_and_changes_nothing(api, make_image, other_user, workspace):
    mine = make_image()
    theirs_ws = workspace_services.workspace_ensure_default(user=other_user)
    theirs = make_image(workspace=theirs_ws)
    theirs_label = Label.objects.create(workspace=theirs_ws, name="x")
    response = api.post(
        BASE + "update", {"images": [str(mine.id), str(theirs.id)], "mark-test": True}, format="json"
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Training image not found."}
    response = api.post(
        BASE + "update",
        {"images": [str(mine.id)], "labels-add": [str(theirs_label.id)], "mark-test": True},
        format="json",
    )
    assert response.status_code == 404
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert not mine.test_image and not theirs.test_image and not mine.labels.exists()


def test_bulk_update_needs_images_or_labels_and_a_token(api, anon):
    response = api.post(BASE + "update", {"mark-test": True}, format="json")
    assert response.status_code == 400
    assert response.json() == {"images": ["Give images or labels to select the images."]}
    assert anon.post(BASE + "update", {"images": [], "mark-test": True}, format="json").status_code == 401
