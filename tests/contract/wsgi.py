"""The service's WSGI application for the contract test (tests/test_contract.py), with URL fetching
replaced by a refusal: a generated ``url`` or ``_url`` must never reach the network, so the live
server answers those records the way it answers an unreachable URL (tests/test_fuzz.py does the
same in-process)."""

from __future__ import annotations

from config.wsgi import application


def _refuse_url(url: str) -> bytes:
    from apps.images.errors import MSG_URL_UNREACHABLE, UrlFetchError

    raise UrlFetchError(MSG_URL_UNREACHABLE)


def _without_url_fetching() -> None:
    # Imported here: the apps' modules load once config.wsgi has set Django up.
    from apps.images import services as image_services
    from apps.inference import services as inference_services

    image_services.fetch_url = _refuse_url
    inference_services.fetch_url = _refuse_url


_without_url_fetching()

__all__ = ["application"]
