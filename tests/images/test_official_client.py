"""The official ximilar-client against a live server: every training-image call it makes."""

from __future__ import annotations

import base64
import os

import pytest
from ximilar.client import RecognitionClient

from apps.images.models import ImageLabel, TrainingImage
from apps.labels.models import Label
from apps.workspaces import services as workspace_services
from tests.pictures import picture

from .servers import serving

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["default", "named"])
def setup(request, live_server, user, token, workspace):
    """A client on the caller's default workspace, or one created with ``workspace=<uuid>``."""
    if request.param == "default":
        client = RecognitionClient(token=token, endpoint=live_server.url + "/")
        target = workspace
    else:
        target = workspace_services.workspace_create(owner=user, name="Team")
        client = RecognitionClient(token=token, endpoint=live_server.url + "/", workspace=str(target.id))
    return client, target


def labels_of(image):
    labels, _ = image.get_labels()
    return sorted(label.name for label in labels)


def test_upload_images_with_file_base64_and_url_records(setup, tmp_path, settings):
    client, workspace = setup
    cat = Label.objects.create(workspace=workspace, name="cat")
    dog = Label.objects.create(workspace=workspace, name="dog")
    size = Label.objects.create(workspace=workspace, name="size", type=Label.Type.VALUE)
    path = tmp_path / "cat.jpg"
    path.write_bytes(picture(size=(640, 600), color=(10, 200, 10)))
    served = picture(size=(300, 200), color=(1, 2, 250))

    with serving({"/dog.jpg": (200, {"Content-Type": "image/jpeg"}, served)}) as (base, hits):
        images, status = client.upload_images(
            [
                {
                    "_file": str(path),
                    "labels": [str(cat.id)],
                    "meta_data": {"source": "file"},
                    "test_image": True,
                },
                {
                    "_base64": base64.b64encode(picture(size=(700, 900), color=(200, 0, 0))),
                    "labels": [str(dog.id)],
                    "noresize": True,
                    "values": {str(size.id): 4.5},
                    "real": True,
                },
                {
                    "_url": base + "/dog.jpg",
                    "labels": [str(cat.id), str(dog.id)],
                    "meta_data": {"source": "url"},
                },
            ]
        )
    assert status == {"status": "OK"}
    assert hits == ["/dog.jpg"]
    by_file, by_base64, by_url = images
    assert by_file.meta_data == {"source": "file"} and by_file.test_image is True
    assert (by_file.img_width, by_file.img_height) == (546, 512)
    assert labels_of(by_file) == ["cat"]
    assert (by_base64.img_width, by_base64.img_height) == (700, 900)  # noresize
    assert labels_of(by_base64) == ["dog", "size"]
    assert ImageLabel.objects.get(image_id=by_base64.id, label=size).value == 4.5
    assert TrainingImage.objects.get(pk=by_base64.id).real is True
    assert by_url.meta_data == {"source": "url"} and labels_of(by_url) == ["cat", "dog"]
    assert {image.workspace for image in images} == {str(workspace.id)}
    assert TrainingImage.objects.filter(workspace=workspace).count() == 3

    # The same bytes again: the client follows the "already exists" detail to the stored image.
    (again,), status = client.upload_images([{"_file": str(path)}])
    assert status == {"status": "exists"}
    assert again.id == by_file.id


def test_get_list_iterate_label_flag_download_and_remove(setup, tmp_path, settings):
    client, workspace = setup
    cat = Label.objects.create(workspace=workspace, name="cat")
    size = Label.objects.create(workspace=workspace, name="size", type=Label.Type.VALUE)
    uploaded, _ = client.upload_images(
        [{"_base64": base64.b64encode(picture(size=(40 + i, 30), color=(i * 40, 0, 0)))} for i in range(3)]
    )
    first = uploaded[0]

    image, status = client.get_image(first.id)
    assert status == {"status": "OK"} and image.id == first.id and image.meta_data == {}
    assert client.get_image("00000000-0000-4000-8000-000000000000")[0] is None

    page, next_page, info = client.get_training_images()
    assert info["count"] == 3 and next_page is None
    assert {item.id for item in page} == {item.id for item in uploaded}
    iterated = list(client.training_images_iter(page_url="recognition/v2/training-image/?page_size=2"))
    assert sorted(item.id for item in iterated) == sorted(item.id for item in uploaded)

    image.add_label(str(cat.id))
    image.add_label(str(size.id), 1.5)
    assert labels_of(image) == ["cat", "size"]
    image.update_label(str(size.id), 2.5)
    assert ImageLabel.objects.get(image_id=image.id, label=size).value == 2.5
    image.detach_label(str(cat.id))
    assert labels_of(image) == ["size"]
    label = Label.objects.get(pk=size.id)
    assert (
        client.get_training_images(page_url=f"recognition/v2/training-image/?labels={label.id}")[2]["count"]
        == 1
    )

    image.add_meta_data({"a": 1})
    image.add_meta_data({"b": 2})
    assert client.get_image(image.id)[0].meta_data == {"a": 1, "b": 2}
    image.clear_meta_data()
    assert image.meta_data == {} and TrainingImage.objects.get(pk=image.id).meta_data == {}

    image.set_test(True)
    image.set_real(True)
    stored = TrainingImage.objects.get(pk=image.id)
    assert stored.test_image and stored.real
    assert [item.id for item in client.get_training_images(test=True)[0]] == [image.id]
    assert [item.id for item in client.get_training_images(real=True)[0]] == [image.id]
    client.modify_images(images=[item.id for item in uploaded], add_labels=[str(cat.id)], test=False)
    assert ImageLabel.objects.filter(label=cat).count() == 3
    assert not TrainingImage.objects.filter(test_image=True).exists()
    client.modify_images(labels=[str(cat.id)], remove_labels=[str(cat.id)], real=False)
    assert not ImageLabel.objects.filter(label=cat).exists()
    assert not TrainingImage.objects.filter(real=True).exists()

    downloaded = image.download(destination=str(tmp_path))
    with open(downloaded, "rb") as handle:
        assert handle.read() == (settings.MEDIA_ROOT / stored.file).read_bytes()
    assert os.path.basename(downloaded).endswith(".jpg")

    files = [settings.MEDIA_ROOT / stored.file, settings.MEDIA_ROOT / stored.thumbnail]
    response = client.remove_image(image.id)
    assert response.status_code == 204
    assert not TrainingImage.objects.filter(pk=image.id).exists()
    assert not any(path.exists() for path in files)
    assert client.get_image(image.id)[0] is None
