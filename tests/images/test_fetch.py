"""URL fetching refuses every non-public address, on the first hop and on every redirect."""

from __future__ import annotations

import pytest

from apps.images.errors import (
    MSG_URL_FORBIDDEN,
    MSG_URL_SCHEME,
    MSG_URL_TOO_MANY_REDIRECTS,
    ImageTooLargeError,
    UrlFetchError,
)
from apps.images.fetch import fetch_url
from apps.images.models import TrainingImage
from tests.pictures import picture

from .conftest import media_files
from .servers import serving

JPEG = picture()


@pytest.fixture
def target():
    """A loopback server standing in for an internal service: it must never be reached."""
    with serving({"/secret": (200, {"Content-Type": "image/jpeg"}, JPEG)}) as (base, hits):
        yield base, hits


def port_of(base: str) -> str:
    return base.rsplit(":", 1)[1]


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
    ],
)
def test_it_refuses_loopback_in_every_spelling_without_reaching_it(target, host, settings):
    base, hits = target
    settings.VF_URL_FETCH_ALLOWED_HOSTS = []
    with pytest.raises(UrlFetchError):
        fetch_url(f"http://{host}:{port_of(base)}/secret")
    assert hits == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/a.jpg",
        "http://10.255.255.254:8080/a.jpg",
        "http://192.168.1.1/a.jpg",
        "http://172.16.0.1/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/a.jpg",
        "http://0.0.0.0/a.jpg",
        "http://224.0.0.1/a.jpg",
        "http://[fd00::1]/a.jpg",
        "http://[fe80::1]/a.jpg",
    ],
)
def test_it_refuses_private_link_local_and_reserved_addresses(url):
    with pytest.raises(UrlFetchError) as error:
        fetch_url(url)
    assert error.value.message == MSG_URL_FORBIDDEN


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.jpg", "gopher://x/", "//x/a.jpg"])
def test_it_fetches_http_and_https_only(url):
    with pytest.raises(UrlFetchError) as error:
        fetch_url(url)
    assert error.value.message == MSG_URL_SCHEME


def test_an_allowed_host_is_fetched(settings):
    with serving({"/cat.jpg": (200, {"Content-Type": "image/jpeg"}, JPEG)}, host="127.0.0.1") as (base, hits):
        settings.VF_URL_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
        assert fetch_url(base + "/cat.jpg") == JPEG
        assert hits == ["/cat.jpg"]


def test_the_allowance_is_for_the_exact_host_not_other_spellings(target, settings):
    base, hits = target
    settings.VF_URL_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
    for host in ("2130706433", "0x7f000001", "localhost"):
        with pytest.raises(UrlFetchError):
            fetch_url(f"http://{host}:{port_of(base)}/secret")
    assert hits == []


def test_a_redirect_from_an_allowed_host_to_loopback_is_refused_before_connecting(target, settings):
    base, hits = target
    routes = {"/go": (302, {"Location": f"http://127.0.0.1:{port_of(base)}/secret"}, b"")}
    with serving(routes, host="localhost") as (allowed_base, allowed_hits):
        settings.VF_URL_FETCH_ALLOWED_HOSTS = ["localhost"]
        with pytest.raises(UrlFetchError) as error:
            fetch_url(allowed_base + "/go")
    assert error.value.message == MSG_URL_FORBIDDEN
    assert allowed_hits == ["/go"]
    assert hits == []


def test_it_follows_at_most_three_redirects(settings):
    routes = {f"/{i}": (302, {"Location": f"/{i + 1}"}, b"") for i in range(5)}
    routes["/5"] = (200, {}, JPEG)
    with serving(routes) as (base, hits):
        settings.VF_URL_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
        assert fetch_url(base + "/2") == JPEG  # 3 redirects: fine
        with pytest.raises(UrlFetchError) as error:
            fetch_url(base + "/0")
    assert error.value.message == MSG_URL_TOO_MANY_REDIRECTS


def test_it_stops_reading_past_the_size_limit(settings):
    settings.VF_MAX_IMAGE_BYTES = 1000
    with serving({"/big": (200, {}, b"x" * 5000)}) as (base, _):
        settings.VF_URL_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
        with pytest.raises(ImageTooLargeError):
            fetch_url(base + "/big")


def test_an_http_error_is_a_clear_400(settings):
    with serving({}) as (base, _):
        settings.VF_URL_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
        with pytest.raises(UrlFetchError) as error:
            fetch_url(base + "/missing.jpg")
    assert error.value.message == "Fetching the URL answered HTTP 404."


@pytest.mark.django_db
def test_upload_by_url_stores_the_fetched_image(api, settings):
    with serving({"/cat.jpg": (200, {"Content-Type": "image/jpeg"}, JPEG)}) as (base, _):
        settings.VF_URL_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
        response = api.post("/recognition/v2/training-image/", {"url": base + "/cat.jpg"}, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["img_width"], response.json()["img_height"]) == (64, 48)


@pytest.mark.django_db
def test_upload_by_a_refused_url_is_400_and_stores_nothing(api, target, settings):
    base, hits = target
    response = api.post("/recognition/v2/training-image/", {"url": base + "/secret"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": MSG_URL_FORBIDDEN}
    assert hits == [] and not TrainingImage.objects.exists() and media_files(settings) == []
