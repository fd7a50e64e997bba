"""Fetching an image from a user-given URL without opening an SSRF hole.

requests-hardened resolves the host, refuses private, loopback, link-local, multicast and reserved
addresses, and connects to the very address it checked (no DNS rebinding between check and
connect). Redirects go through the same adapter, so each hop is checked again; requests stops
after ``MAX_REDIRECTS``. Only http and https adapters are mounted, so ``file:``, ``gopher:`` and
friends are refused before any connection. ``VF_URL_FETCH_ALLOWED_HOSTS`` names hosts that skip the
address check (intranets, the tests' loopback server); it is matched on the exact hostname of each
hop, so ``2130706433`` or a redirect to ``127.0.0.1`` does not inherit an allowance for
``localhost``.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests_hardened import Config, HTTPSession
from requests_hardened.ip_filter import InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter

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


def _allowed_hosts() -> set[str]:
    return {host.lower().strip("[]") for host in getattr(settings, "VF_URL_FETCH_ALLOWED_HOSTS", [])}


class _AllowListAdapter(IPFilterAdapter):
    """requests-hardened's address filter, skipped for the configured allowed hosts only."""

    def __init__(self, is_https_proto: bool, allowed: set[str]):
        super().__init__(is_https_proto=is_https_proto, allow_loopback=False)
        self._allowed = allowed

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        hostname = (urlsplit(request.url).hostname or "").lower()
        if hostname and hostname in self._allowed:
            return HTTPAdapter.build_connection_pool_key_attributes(self, request, verify, cert)
        return super().build_connection_pool_key_attributes(request, verify, cert)


def _session() -> requests.Session:
    session = HTTPSession(
        Config(
            ip_filter_enable=True,
            ip_filter_allow_loopback_ips=False,
            never_redirect=False,
            default_timeout=(TIMEOUT_SECONDS, TIMEOUT_SECONDS),
            user_agent_override=USER_AGENT,
        )
    )
    allowed = _allowed_hosts()
    session.mount("http://", _AllowListAdapter(is_https_proto=False, allowed=allowed))
    session.mount("https://", _AllowListAdapter(is_https_proto=True, allowed=allowed))
    session.max_redirects = MAX_REDIRECTS
    # Proxy variables from the environment would make the proxy, not the target, the checked host.
    session.trust_env = False
    return session


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
