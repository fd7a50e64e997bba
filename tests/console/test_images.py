"""Images in the console: the per-file upload the drop zones call, the filtered grid, bulk actions."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.images.errors import MSG_NOT_AN_IMAGE
from apps.images.models import ImageLabel, TrainingImage
from apps.labels.models import Label
from apps.workspaces.services import workspace_ensure_default
from tests.factories import TaskFactory, TrainingImageFactory
from tests.pictures import picture


def _task(workspace, *names, label_type="category"):
    task = TaskFactory(workspace=workspace)
    labels = [Label.objects.create(workspace=workspace, name=name, type=label_type) for name in names]
    task.labels.add(*labels)
    return task, labels


def _upload(console, task, data: bytes, name="a.jpg", **fields):
    body = {"file": SimpleUploadedFile(name, data, content_type="image/jpeg"), **fields}
    return console.post(f"/console/tasks/{task.id}/images/upload/", body)


def test_a_file_dropped_on_a_label_is_stored_with_that_label(console, workspace):
    task, (cat, _dog) = _task(workspace, "cat", "dog")
    response = _upload(console, task, picture(color=(1, 2, 3)), label=str(cat.id))
    assert response.status_code == 201
    image = TrainingImage.objects.get(pk=response.json()["id"])
    assert list(image.labels.all()) == [cat]
    assert response.json()["thumb_url"].startswith("/media/")


def test_each_file_gets_its_own_error_duplicate_not_an_image_too_large(console, workspace, settings):
    task, (cat,) = _task(workspace, "cat")
    data = picture(color=(9, 9, 9))
    assert _upload(console, task, data, label=str(cat.id)).status_code == 201
    duplicate = _upload(console, task, data, label=str(cat.id))
    assert duplicate.status_code == 400
    assert "already exists" in duplicate.json()["error"]
    junk = _upload(console, task, b"not an image at all", name="notes.txt", label=str(cat.id))
    assert junk.status_code == 400
    assert junk.json()["error"] == MSG_NOT_AN_IMAGE
    settings.VF_MAX_IMAGE_BYTES = 100
    large = _upload(console, task, picture(size=(300, 300), color=(5, 6, 7)), label=str(cat.id))
    assert large.status_code == 413, large.content
    assert large.json()["error"] == "The image is larger than 100 bytes."
    assert TrainingImage.objects.filter(workspace=workspace).count() == 1


def test_a_value_label_needs_a_value_and_stores_it(console, workspace):
    task, (size,) = _task(workspace, "size", label_type="value")
    refused = _upload(console, task, picture(color=(4, 4, 4)), label=str(size.id))
    assert refused.status_code == 409  # the label asks for a value (apps/images/services.py)
    assert refused.json()["error"] == "A value label needs a numeric value."
    stored = _upload(console, task, picture(color=(4, 4, 4)), label=str(size.id), value="2.5")
    assert stored.status_code == 201
    assert ImageLabel.objects.get(image_id=stored.json()["id"]).value == 2.5


def test_an_upload_onto_another_workspaces_label_is_a_404_and_stores_nothing(console, workspace, other_user):
    task, _ = _task(workspace, "cat")
    foreign = Label.objects.create(workspace=workspace_ensure_default(user=other_user), name="theirs")
    response = _upload(console, task, picture(color=(3, 3, 3)), label=str(foreign.id))
    assert response.status_code == 404
    assert not TrainingImage.objects.exists()


def test_the_grid_pages_and_filters_by_label_test_flag_and_unlabelled(console, workspace, settings):
    settings.VF_CONSOLE_PAGE_SIZE = 2
    task, (cat, dog) = _task(workspace, "cat", "dog")
    cats = [TrainingImageFactory(workspace=workspace, label_ids=[cat.id]) for _ in range(3)]
    dog_test = TrainingImageFactory(workspace=workspace, label_ids=[dog.id], test_image=True)
    loose = TrainingImageFactory(workspace=workspace)
    url = f"/console/tasks/{task.id}/images/"

    def shown(query=""):
        page = console.get(url + query).content.decode()
        return {image.id for image in [*cats, dog_test, loose] if str(image.id) in page}

    assert len(shown()) == 2 and b"4 images" in console.get(url).content
    assert shown("?page=2") | shown() == {c.id for c in cats} | {dog_test.id}
    assert shown(f"?label={dog.id}") == {dog_test.id}
    assert shown("?test=1") == {dog_test.id}
    assert shown("?unlabelled=on") == {loose.id}
    partial = console.get(url, HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content and b"thumbs" in partial.content


def test_bulk_actions_label_unlabel_mark_test_and_delete_the_selected_images(console, workspace):
    task, (cat, dog) = _task(workspace, "cat", "dog")
    images = [TrainingImageFactory(workspace=workspace, label_ids=[cat.id]) for _ in range(3)]
    chosen = [str(images[0].id), str(images[1].id)]
    url = f"/console/tasks/{task.id}/images/bulk/"
    console.post(url, {"images": chosen, "action": "label", "label": str(dog.id)})
    assert set(ImageLabel.objects.filter(label=dog).values_list("image_id", flat=True)) == {
        images[0].id,
        images[1].id,
    }
    console.post(url, {"images": chosen[:1], "action": "unlabel", "label": str(cat.id)})
    assert not ImageLabel.objects.filter(label=cat, image=images[0]).exists()
    console.post(url, {"images": chosen, "action": "test"})
    assert set(TrainingImage.objects.filter(test_image=True).values_list("id", flat=True)) == {
        images[0].id,
        images[1].id,
    }
    response = console.post(url, {"images": chosen, "action": "delete"}, follow=True)
    assert b"Delete: 2 image(s)." in response.content
    assert list(TrainingImage.objects.values_list("id", flat=True)) == [images[2].id]


def test_a_bulk_action_refuses_bad_input_and_changes_nothing(console, workspace, other_user):
    task, (cat,) = _task(workspace, "cat")
    mine = TrainingImageFactory(workspace=workspace)
    theirs = TrainingImageFactory(workspace=workspace_ensure_default(user=other_user))
    url = f"/console/tasks/{task.id}/images/bulk/"
    no_label = console.post(url, {"images": [str(mine.id)], "action": "label"}, follow=True)
    assert b"Choose the label." in no_label.content
    foreign = console.post(url, {"images": [str(mine.id), str(theirs.id)], "action": "test"}, follow=True)
    assert b"Training image not found." in foreign.content
    console.post(url, {"images": [str(theirs.id)], "action": "delete"})
    bad_id = console.post(url, {"images": ["junk"], "action": "delete"}, follow=True)
    assert b"Select images from the grid." in bad_id.content
    assert TrainingImage.objects.filter(test_image=True).count() == 0
    assert TrainingImage.objects.count() == 2
    assert not ImageLabel.objects.exists()


def test_another_workspaces_task_has_no_image_pages(console, other_user):
    task, (cat,) = _task(workspace_ensure_default(user=other_user), "cat")
    assert console.get(f"/console/tasks/{task.id}/images/").status_code == 404
    response = _upload(console, task, picture(color=(8, 1, 1)), label=str(cat.id))
    assert response.status_code == 404
    assert not TrainingImage.objects.exists()


def test_a_bulk_action_returns_to_the_grid_as_it_was_filtered(console, workspace):
    task, (cat,) = _task(workspace, "cat")
    image = TrainingImageFactory(workspace=workspace, label_ids=[cat.id])
    url = f"/console/tasks/{task.id}/images/bulk/"
    body = {"images": [str(image.id)], "action": "test", "query": f"label={cat.id}&test=0"}
    assert console.post(url, body)["Location"] == f"/console/tasks/{task.id}/images/?label={cat.id}&test=0"
    hostile = console.post(url, {**body, "query": "page=2\r\nSet-Cookie: x=1"})
    assert hostile["Location"] == f"/console/tasks/{task.id}/images/?page=2%0D%0ASet-Cookie%3A+x%3D1"


def test_an_oversized_file_is_stopped_while_it_streams_in_and_csrf_still_holds(
    user, workspace, settings, tmp_path, spooled
):
    """The drop zone's upload and try-it stop a file part at the image limit as the API does
    (apps/console/uploads.py), instead of Django spooling it whole first; the CSRF check, which
    has to run after the size guard is in place, still refuses a post without a token."""
    from django.test import Client

    task, (cat,) = _task(workspace, "cat")
    settings.VF_MAX_IMAGE_BYTES = 100_000
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get(f"/console/tasks/{task.id}/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    big = b"\0" * (30 * settings.VF_MAX_IMAGE_BYTES)
    for path, field in (("images/upload/", "file"), ("try/", "image")):
        body = {field: SimpleUploadedFile("big.jpg", big, content_type="image/jpeg"), "label": str(cat.id)}
        refused = client.post(f"/console/tasks/{task.id}/{path}", body)
        assert refused.status_code == 403  # no CSRF token: refused before the view
        spooled.clear()
        body[field].seek(0)
        response = client.post(f"/console/tasks/{task.id}/{path}", body, HTTP_X_CSRFTOKEN=token)
        assert response.status_code == 413, response.content
        assert b"The image is larger than 100000 bytes." in response.content
        assert 0 < sum(spooled) <= settings.VF_MAX_IMAGE_BYTES  # not 30 times as much
    assert list(tmp_path.iterdir()) == []
    assert not TrainingImage.objects.filter(workspace=workspace).exists()
