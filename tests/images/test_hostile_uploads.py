"""Hostile uploads get a clear 400 (413 for size) and leave no row and no file behind."""

from __future__ import annotations

import base64
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError

from apps.images import decoding
from apps.images.errors import ImageInputError
from apps.images.models import TrainingImage

from .conftest import b64, media_files
from .pictures import picture, png_header_only, truncated

pytestmark = pytest.mark.django_db

BASE = "/recognition/v2/training-image/"


def assert_nothing_stored(settings):
    assert not TrainingImage.objects.exists()
    assert media_files(settings) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (truncated(picture(size=(300, 300))), "The image is truncated or corrupt."),
        (truncated(picture(size=(300, 300), fmt="PNG")), "The image is truncated or corrupt."),
        (b"", "The image is empty."),
        (b"hello, I am text, not an image", decoding.MSG_NOT_AN_IMAGE),
        (picture(fmt="TIFF"), "Unsupported image format TIFF; send JPEG, PNG, WebP, GIF or BMP."),
        (png_header_only(100_000, 100_000), decoding.MSG_TOO_MANY_PIXELS.format(limit=decoding.MAX_PIXELS)),
        (png_header_only(9000, 9000), decoding.MSG_TOO_MANY_PIXELS.format(limit=decoding.MAX_PIXELS)),
    ],
    ids=["truncated-jpeg", "truncated-png", "zero-bytes", "text", "tiff", "bomb", "bomb-warning-level"],
)
def test_a_bad_file_is_400_with_the_reason_and_nothing_is_stored(api, settings, data, message):
    upload = SimpleUploadedFile("x.jpg", data, content_type="image/jpeg")
    response = api.post(BASE, {"img_path": upload}, format="multipart")
    assert response.status_code == 400, response.content
    if data:
        assert response.json() == {"detail": message}
    else:  # DRF refuses an empty file itself
        assert "img_path" in response.json()
    assert_nothing_stored(settings)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b64(truncated(picture(size=(300, 300)))), "The image is truncated or corrupt."),
        ("not base64 at all!!", "The base64 data is not valid."),
        ("data:image/jpeg;base64,@@@@", "The base64 data is not valid."),
        (base64.b64encode(b"plain text").decode(), decoding.MSG_NOT_AN_IMAGE),
        (
            b64(png_header_only(100_000, 100_000)),
            decoding.MSG_TOO_MANY_PIXELS.format(limit=decoding.MAX_PIXELS),
        ),
        ("data:image/png;base64,", "The image is empty."),
    ],
)
def test_bad_base64_is_400_with_the_reason(api, settings, data, message):
    response = api.post(BASE, {"base64": data}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": message}
    assert_nothing_stored(settings)


def test_a_file_over_the_limit_is_413(api, settings):
    settings.VF_MAX_IMAGE_BYTES = 50_000
    upload = SimpleUploadedFile("big.bmp", picture(size=(200, 200), fmt="BMP"), content_type="image/bmp")
    response = api.post(BASE, {"img_path": upload}, format="multipart")
    assert response.status_code == 413
    assert response.json() == {"detail": "The image is larger than 50000 bytes."}
    assert_nothing_stored(settings)


def test_base64_over_the_limit_is_413(api, settings):
    settings.VF_MAX_IMAGE_BYTES = 50_000
    response = api.post(BASE, {"base64": b64(picture(size=(200, 200), fmt="BMP"))}, format="json")
    assert response.status_code == 413
    assert_nothing_stored(settings)


def test_a_body_over_djangos_limit_is_a_json_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post(BASE, {"base64": "A" * 5000}, format="json")
    assert response.status_code == 413
    assert "detail" in response.json()
    assert_nothing_stored(settings)


def test_a_real_ten_megabyte_limit_applies_by_default(api, settings):
    data = b"\xff\xd8" + b"\0" * (settings.VF_MAX_IMAGE_BYTES + 10)
    upload = SimpleUploadedFile("huge.jpg", data, content_type="image/jpeg")
    response = api.post(BASE, {"img_path": upload}, format="multipart")
    assert response.status_code == 413
    assert_nothing_stored(settings)


def test_files_are_removed_when_the_database_write_fails(api, settings):
    with mock.patch.object(TrainingImage.objects, "create", side_effect=DatabaseError("disk full")):
        with pytest.raises(DatabaseError):
            api.post(BASE, {"base64": b64(picture())}, format="json")
    assert_nothing_stored(settings)


def test_load_image_gives_rgb_first_frame_with_orientation_applied():
    gif = decoding.load_image(picture(size=(30, 20), color=(255, 0, 0), fmt="GIF"))
    assert gif.mode == "RGB" and gif.size == (30, 20)
    assert gif.getpixel((10, 2))[0] > 200  # the red first frame, not the blue second one
    png = decoding.load_image(picture(size=(10, 10), fmt="PNG"))
    assert png.mode == "RGB"
    with pytest.raises(ImageInputError):
        decoding.load_image(b"GIF89a")


def test_decode_base64_accepts_data_urls_url_safe_and_missing_padding():
    raw = bytes(range(256)) * 3 + b"xy"
    standard = base64.b64encode(raw).decode()
    assert decoding.decode_base64(standard) == raw
    assert decoding.decode_base64("data:image/png;base64," + standard) == raw
    assert decoding.decode_base64(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    assert decoding.decode_base64(standard[:40] + "\n" + standard[40:]) == raw
