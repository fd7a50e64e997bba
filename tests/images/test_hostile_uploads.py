"""Hostile uploads get a clear 400 (413 for size) and leave no row and no file behind."""

from __future__ import annotations

import base64
import io
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError
from PIL import Image

from apps.images import decoding
from apps.images.errors import ImageInputError
from apps.images.models import TrainingImage
from ml.images import to_rgb
from tests.pictures import jpeg_with_orientation, picture, png_header_only, truncated

from .conftest import b64, media_files

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


def _rgb(data: bytes):
    return to_rgb(decoding.open_image(data)[0])


def test_an_upload_reads_as_the_rgb_first_frame_with_orientation_applied():
    gif = _rgb(picture(size=(30, 20), color=(255, 0, 0), fmt="GIF"))
    assert gif.mode == "RGB" and gif.size == (30, 20)
    assert gif.getpixel((10, 2))[0] > 200  # the red first frame, not the blue second one
    png = _rgb(picture(size=(10, 10), fmt="PNG"))
    assert png.mode == "RGB"
    upright = _rgb(jpeg_with_orientation(size=(80, 40), orientation=6))
    assert upright.size == (40, 80)
    with pytest.raises(ImageInputError):
        decoding.open_image(b"GIF89a")


def test_decode_base64_accepts_data_urls_url_safe_and_missing_padding():
    raw = bytes(range(256)) * 3 + b"xy"
    standard = base64.b64encode(raw).decode()
    assert decoding.decode_base64(standard) == raw
    assert decoding.decode_base64("data:image/png;base64," + standard) == raw
    assert decoding.decode_base64(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    assert decoding.decode_base64(standard[:40] + "\n" + standard[40:]) == raw


# --- unusual but valid images: a correct result --------------------------------------------------


def _cmyk_jpeg(size=(60, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", size, (0, 255, 255, 0)).save(buffer, "JPEG")  # pure red in CMYK
    return buffer.getvalue()


def _png16(size=(50, 30)) -> bytes:
    image = Image.new("I;16", size)
    image.putdata([(x * 1300) % 65536 for x in range(size[0] * size[1])])
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _stored(settings, response) -> Image.Image:
    image = TrainingImage.objects.get(pk=response.json()["id"])
    return Image.open(settings.MEDIA_ROOT / image.file)


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (_cmyk_jpeg(), (60, 40)),
        (_png16(), (50, 30)),
        (picture(size=(30, 20), color=(255, 0, 0), fmt="GIF"), (30, 20)),
    ],
    ids=["cmyk-jpeg", "16-bit-png", "animated-gif"],
)
def test_cmyk_16_bit_and_animated_images_are_stored_as_rgb(api, settings, data, size):
    upload = SimpleUploadedFile("odd.img", data, content_type="application/octet-stream")
    response = api.post(BASE, {"img_path": upload}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["img_width"], body["img_height"]) == size
    stored = _stored(settings, response)
    assert stored.mode in ("RGB", "L", "P")
    assert stored.size == size


def test_a_cmyk_jpeg_keeps_its_colour(api, settings):
    response = api.post(BASE, {"base64": b64(_cmyk_jpeg())}, format="json")
    assert response.status_code == 201
    red, green, blue = _stored(settings, response).convert("RGB").getpixel((5, 5))
    assert red > 200 and green < 60 and blue < 60


def test_an_animated_gif_is_its_first_frame(api, settings):
    response = api.post(BASE, {"base64": b64(picture(size=(30, 20), color=(255, 0, 0), fmt="GIF"))})
    assert response.status_code == 201
    assert _stored(settings, response).convert("RGB").getpixel((10, 2))[0] > 200


def test_a_file_of_exactly_the_limit_is_read_and_one_byte_more_is_413(api, settings):
    settings.VF_MAX_IMAGE_BYTES = 40_000
    image = picture(size=(64, 48), fmt="PNG")
    at_limit = image + b"\0" * (settings.VF_MAX_IMAGE_BYTES - len(image))  # trailing bytes after IEND
    response = api.post(BASE, {"img_path": SimpleUploadedFile("a.png", at_limit)}, format="multipart")
    assert response.status_code == 201, response.content
    response = api.post(BASE, {"img_path": SimpleUploadedFile("b.png", at_limit + b"\0")}, format="multipart")
    assert response.status_code == 413
    assert response.json() == {"detail": f"The image is larger than {settings.VF_MAX_IMAGE_BYTES} bytes."}
    assert TrainingImage.objects.count() == 1


@pytest.mark.parametrize("path", [BASE, f"{BASE}import-zip"], ids=["image", "zip"])
def test_an_oversized_part_is_stopped_while_it_streams_in_not_spooled_whole(
    api, settings, tmp_path, spooled, path
):
    """Django would spool a file part of any size to a temporary file before the view sees it;
    the parser stops passing it on once it is past the limit (image, or the larger zip limit)."""
    settings.VF_MAX_IMAGE_BYTES = 100_000
    limit = settings.VF_MAX_IMAGE_BYTES * (20 if "zip" in path else 1)
    body = b"\0" * (30 * limit)
    field = "zip" if "zip" in path else "img_path"
    response = api.post(path, {field: SimpleUploadedFile("big.bin", body)}, format="multipart")

    assert response.status_code == 413, response.content
    assert response.json() == {"detail": f"The image is larger than {limit} bytes."}
    assert 0 < sum(spooled) <= limit  # stopped at the limit, not after 30 times as much
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone
    assert_nothing_stored(settings)


def test_a_large_jpeg_upload_decodes_at_a_reduced_scale_within_the_decode_gate(api, settings, monkeypatch):
    """Stored images are scaled to a shorter side of 512 px, so a 4,000 x 3,000 JPEG need not be
    decoded whole: Image.draft decodes it at 1/4 (1,000 x 750), and the decode gate counts that."""
    held = []
    original_hold = decoding.DECODE_GATE.hold

    def recording(pixels):
        held.append(pixels)
        return original_hold(pixels)

    monkeypatch.setattr(decoding.DECODE_GATE, "hold", recording)
    big = picture(size=(4000, 3000), fmt="JPEG")
    response = api.post(BASE, {"base64": b64(big)}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["img_width"], response.json()["img_height"]) == (683, 512)
    assert held == [1000 * 750]
    assert decoding.DECODE_GATE.in_use == 0

    other = picture(size=(4000, 3000), fmt="JPEG", color=(10, 200, 30))
    response = api.post(BASE, {"base64": b64(other), "noresize": True}, format="json")
    assert response.status_code == 201, response.content
    assert held[-1] == 4000 * 3000  # kept as sent: decoded whole
