"""img_path and thumb_img_path are signed, expiring links; nothing else opens a file."""

from __future__ import annotations

import time
import uuid
from unittest import mock
from urllib.parse import urlencode, urlsplit

import pytest

from apps.images import storage

pytestmark = pytest.mark.django_db


def path_of(link: str) -> str:
    parts = urlsplit(link)
    return parts.path + ("?" + parts.query if parts.query else "")


def test_a_signed_link_serves_the_file_without_a_token(api, anon, make_image, settings):
    image = make_image()
    body = api.get(f"/recognition/v2/training-image/{image.id}/").json()
    for key, name in (("img_path", image.file), ("thumb_img_path", image.thumbnail)):
        response = anon.get(path_of(body[key]))
        assert response.status_code == 200
        assert response["Content-Type"] == "image/jpeg"
        assert b"".join(response.streaming_content) == (settings.MEDIA_ROOT / name).read_bytes()


def test_an_unsigned_link_is_refused(anon, make_image):
    image = make_image()
    assert anon.get(f"/media/{image.file}").status_code == 403
    assert anon.get(f"/media/{image.file}?sig=").status_code == 403


def test_a_tampered_link_is_refused(anon, make_image):
    image, other = make_image(), make_image()
    signature = storage.sign(image.file)
    assert anon.get(f"/media/{image.file}?sig={signature[:-1]}x").status_code == 403
    # A signature is bound to its file: it does not open another one.
    assert anon.get(f"/media/{other.file}?sig={signature}").status_code == 403
    assert anon.get(f"/media/{image.file}?sig=123:abc").status_code == 403


def test_an_expired_link_is_refused(anon, make_image, settings):
    settings.VF_SIGNED_URL_TTL = 60
    image = make_image()
    link = f"/media/{image.file}?sig={storage.sign(image.file)}"
    assert anon.get(link).status_code == 200
    with mock.patch("django.core.signing.time.time", return_value=time.time() + 61):
        assert anon.get(link).status_code == 403


def test_an_image_id_alone_opens_nothing(anon, make_image):
    image = make_image()
    assert anon.get(f"/media/{image.id}").status_code == 403
    assert anon.get(f"/media/training-images/{image.workspace_id}/{image.id}.jpg").status_code == 403
    assert str(image.id) not in image.file


def test_a_signed_link_to_a_deleted_file_is_404(anon, make_image, settings):
    image = make_image()
    link = f"/media/{image.file}?sig={storage.sign(image.file)}"
    (settings.MEDIA_ROOT / image.file).unlink()
    assert anon.get(link).status_code == 404


def test_links_outside_a_request_use_the_public_url(settings):
    settings.VF_PUBLIC_URL = "https://vision.example.com/"
    link = storage.signed_url("training-images/x/a.jpg")
    assert link.startswith("https://vision.example.com/media/training-images/x/a.jpg?sig=")


def test_a_presigning_storage_is_asked_for_an_expiring_url(settings):
    settings.VF_SIGNED_URL_TTL = 123

    class Presigning:
        def url(self, name, expire=None):
            return f"https://bucket.s3.example.com/{name}?X-Amz-Expires={expire}"

    with mock.patch.object(storage, "default_storage", Presigning()):
        assert storage.signed_url("a/b.jpg") == "https://bucket.s3.example.com/a/b.jpg?X-Amz-Expires=123"


def test_a_rotated_secret_key_takes_effect_at_once(settings):
    # The signer is kept per key set: a link signed under the old key verifies only while that key
    # is among the fallbacks.
    settings.SECRET_KEY = "old-key-" + "x" * 50
    signature = storage.sign("training-images/a.jpg")
    assert storage.verify("training-images/a.jpg", signature)
    settings.SECRET_KEY = "new-key-" + "y" * 50
    assert not storage.verify("training-images/a.jpg", signature)
    settings.SECRET_KEY_FALLBACKS = ["old-key-" + "x" * 50]
    assert storage.verify("training-images/a.jpg", signature)
    assert storage.sign("training-images/a.jpg") != signature  # new links use the new key


@pytest.mark.parametrize(
    "name",
    ["training-images/ws/abc.jpg", "training-images/ws/thumbs/ü ber#?&.jpg", "a:b", ""],
)
def test_the_signature_query_is_what_urlencode_makes(name):
    for offset in (0, 1, 61, 3600 * 24 * 365 * 40):
        with mock.patch("django.core.signing.time.time", return_value=1_700_000_000 + offset):
            signature = storage.sign(name + uuid.uuid4().hex)
        assert storage._signature_query(signature) == urlencode({storage.SIGNATURE_PARAM: signature})


@pytest.mark.parametrize("fallbacks", [(), ("old-key-" + "y" * 50,)])
def test_the_media_signer_signs_what_djangos_signer_signs(settings, fallbacks):
    from django.core import signing

    settings.SECRET_KEY_FALLBACKS = list(fallbacks)
    django_signer = signing.TimestampSigner(
        key=settings.SECRET_KEY, fallback_keys=list(fallbacks), salt=storage.SIGNING_SALT
    )
    for now in (1_700_000_000.0, 1_700_000_000.9, 1_700_000_001.0, 2_500_000_000.5):
        with mock.patch("django.core.signing.time.time", return_value=now):
            for name in ("training-images/ws/abc.jpg", "ü ber:#?.jpg", ""):
                assert storage._signer().sign(name) == django_signer.sign(name)
                assert storage.sign(name) == django_signer.sign(name)[len(name) + 1 :]
                assert storage._signer().signature(name, "other-key") == django_signer.signature(
                    name, "other-key"
                )


def test_a_link_signed_with_a_fallback_key_still_verifies(settings):
    from django.core import signing

    old_key = "old-key-" + "z" * 50
    old = signing.TimestampSigner(key=old_key, salt=storage.SIGNING_SALT).sign("training-images/b.jpg")
    assert not storage.verify("training-images/b.jpg", old.split(":", 1)[1])
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert storage.verify("training-images/b.jpg", old.split(":", 1)[1])


@pytest.mark.parametrize("script_prefix", ["/", "/vision/"])
def test_a_link_for_a_request_is_its_origin_then_the_host_relative_link(script_prefix):
    from django.test import RequestFactory
    from django.urls import get_script_prefix, set_script_prefix

    previous = get_script_prefix()
    set_script_prefix(script_prefix)
    try:
        request = RequestFactory().get("/", HTTP_HOST="testserver")
        with mock.patch("django.core.signing.time.time", return_value=1_700_000_000.0):
            for name in ("training-images/ws/abc.jpg", "training-images/ws/thumbs/ü ber#?&.jpg"):
                link = storage.signed_url(name, request)
                assert link == "http://testserver" + storage.signed_link(name)
                assert link.startswith(f"http://testserver{script_prefix}media/")
            assert storage.signed_url("", request) == ""
    finally:
        set_script_prefix(previous)
