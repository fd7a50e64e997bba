"""Fetching an image from a user-given URL without opening an SSRF hole.

The address checks are apps/core/outbound.py's guard (shared with webhook deliveries): public
addresses only, checked on every hop and connected to as checked. ``VF_URL_FETCH_ALLOWED_HOSTS``
names hosts that skip the address check (intranets, the tests' loopback server); it is matched on
the exact hostname of each hop. Redirects are followed, at most ``MAX_REDIRECTS``.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings

from apps.core.outbound import InvalidIPAddress, guarded_session

from .decoding import max_image_bytes
from .errors import (
    MSG_TOO_LARGE,
    MSG_URL_FORBIDDEN,
    MSG_URL_INVALID,
    MSG_URL_SCHEME,
    MSG_URL_STATUS,
    MSG_URL_TIMEOUT,
    MSG_URL_TOO_MANY_REDIRECTS,
    MSG_URL_UNREACHABLE,
    ImageTooLargeError,
    UrlFetchError,
)

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3
TIMEOUT_SECONDS = 10
USER_AGENT = "VisionForge image fetcher"
_CHUNK = 64 * 1024


def _session() -> requests.Session:
    return guarded_session(
        allowed_hosts=getattr(settings, "VF_URL_FETCH_ALLOWED_HOSTS", []),
        timeout=TIMEOUT_SECONDS,
        user_agent=USER_AGENT,
        max_redirects=MAX_REDIRECTS,
    )


def fetch_url(url: str) -> bytes:
    """The body of ``url`` if it is an http(s) URL on a public address, at most the image size limit.

    Raises ``UrlFetchError`` (400) with the reason when the URL is refused (scheme, non-public
    address on any hop, more than 3 redirects) or fails (timeout, connection error, HTTP error),
    and ``ImageTooLargeError`` (413) once the body passes ``VF_MAX_IMAGE_BYTES``.
    """
    if not isinstance(url, str) or not url.strip():
        raise UrlFetchError(MSG_URL_INVALID)
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UrlFetchError(MSG_URL_INVALID) from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise UrlFetchError(MSG_URL_SCHEME)
    if not parts.hostname:
        raise UrlFetchError(MSG_URL_INVALID)

    limit = max_image_bytes()
    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        with _session() as session, session.get(url, stream=True, allow_redirects=True) as response:
            if response.status_code >= 400:
                raise UrlFetchError(MSG_URL_STATUS.format(status=response.status_code))
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise ImageTooLargeError(MSG_TOO_LARGE.format(limit=limit))
            body = bytearray()
            for chunk in response.iter_content(_CHUNK):
                body.extend(chunk)
                if len(body) > limit:
                    raise ImageTooLargeError(MSG_TOO_LARGE.format(limit=limit))
                # The per-read timeout alone would let a slow drip run for ever.
                if time.monotonic() > deadline:
                    raise UrlFetchError(MSG_URL_TIMEOUT)
            return bytes(body)
    except InvalidIPAddress as exc:
        logger.warning("Refused to fetch %s: %s", url, exc)
        raise UrlFetchError(MSG_URL_FORBIDDEN) from exc
    except requests.TooManyRedirects as exc:
        raise UrlFetchError(MSG_URL_TOO_MANY_REDIRECTS) from exc
    except requests.Timeout as exc:
        raise UrlFetchError(MSG_URL_TIMEOUT) from exc
    except (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema) as exc:
        raise UrlFetchError(MSG_URL_SCHEME) from exc
    except (requests.exceptions.InvalidURL, ValueError) as exc:
        raise UrlFetchError(MSG_URL_INVALID) from exc
    except requests.RequestException as exc:
        raise UrlFetchError(MSG_URL_UNREACHABLE) from exc
