from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.images.models import TrainingImage
from tests.pictures import picture, truncated

from .conftest import media_files

pytestmark = pytest.mark.django_db

URL = "/recognition/v2/training-image/import-zip/"


def archive(files: dict) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return SimpleUploadedFile("cats.zip", buffer.getvalue(), content_type="application/zip")


def test_a_zip_per_label_imports_every_image_and_lists_the_skipped_ones(api, make_label):
    cat = make_label("cat")
    red = picture(color=(255, 0, 0))
    files = {
        "cats/1.jpg": red,
        "cats/2.png": picture(color=(0, 255, 0), fmt="PNG"),
        "cats/copy.jpg": red,
        "cats/broken.jpg": truncated(picture(size=(300, 300))),
        "__MACOSX/cats/._1.jpg": b"junk",
    }
    response = api.post(URL, {"zip": archive(files), "labels": str(cat.id)}, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert len(body["images"]) == 2
    assert all([label["name"] for label in image["labels"]] == ["cat"] for image in body["images"])
    assert sorted(item["name"] for item in body["skipped"]) == ["cats/broken.jpg", "cats/copy.jpg"]
    assert TrainingImage.objects.filter(labels=cat).count() == 2


def test_a_zip_with_an_oversized_member_skips_it(api, settings):
    settings.VF_MAX_IMAGE_BYTES = 20_000
    response = api.post(
        URL,
        {"zip": archive({"big.bmp": picture(size=(200, 200), fmt="BMP"), "ok.jpg": picture()})},
        format="multipart",
    )
    assert response.status_code == 201
    assert [item["name"] for item in response.json()["skipped"]] == ["big.bmp"]


def test_not_a_zip_is_400_and_stores_nothing(api, settings):
    upload = SimpleUploadedFile("x.zip", b"not a zip", content_type="application/zip")
    response = api.post(URL, {"zip": upload}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"detail": "The file is not a zip archive we can read."}
    assert not TrainingImage.objects.exists() and media_files(settings) == []


def test_zip_import_needs_a_token_and_own_labels(anon, other_api, make_label):
    cat = make_label("cat")
    assert anon.post(URL, {"zip": archive({"a.jpg": picture()})}, format="multipart").status_code == 401
    response = other_api.post(
        URL, {"zip": archive({"a.jpg": picture()}), "labels": str(cat.id)}, format="multipart"
    )
    assert response.status_code == 404
    assert not TrainingImage.objects.exists()
