"""Requests to URLs users give us, without opening an SSRF hole: the one guard for the ``_url``
records of images (apps/images/fetch.py) and for webhook deliveries (apps/webhooks).

requests-hardened resolves the host, refuses private, loopback, link-local, multicast and reserved
addresses, and connects to the very address it checked (no DNS rebinding between check and
connect). Redirects, where a caller follows them, go through the same adapter, so each hop is
checked again. Only http and https adapters are mounted, so ``file:``, ``gopher:`` and friends are
refused before any connection. ``allowed_hosts`` names hosts that skip the address check
(intranets, the tests' loopback servers); it is matched on the exact hostname of each hop, so
``2130706433`` or a redirect to ``127.0.0.1`` does not inherit an allowance for ``localhost``.
Each caller has its own setting for those hosts (``VF_URL_FETCH_ALLOWED_HOSTS``,
``VF_WEBHOOKS_ALLOWED_HOSTS``): allowing an intranet image host does not let webhooks post to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests_hardened import Config, HTTPSession
from requests_hardened.ip_filter import InvalidIPAddress, filter_host
from requests_hardened.ip_filter_adapter import IPFilterAdapter

__all__ = ["InvalidIPAddress", "guarded_session", "host_refused"]


def _hosts(allowed_hosts: Iterable[str]) -> frozenset[str]:
    return frozenset(host.lower().strip("[]") for host in allowed_hosts)


class _AllowListAdapter(IPFilterAdapter):
    """requests-hardened's address filter, skipped for the allowed hosts only."""

    def __init__(self, is_https_proto: bool, allowed: frozenset[str]):
        super().__init__(is_https_proto=is_https_proto, allow_loopback=False)
        self._allowed = allowed

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        hostname = (urlsplit(request.url).hostname or "").lower()
        if hostname and hostname in self._allowed:
            return HTTPAdapter.build_connection_pool_key_attributes(self, request, verify, cert)
        return super().build_connection_pool_key_attributes(request, verify, cert)


def guarded_session(
    *, allowed_hosts: Iterable[str], timeout: float, user_agent: str, max_redirects: int
) -> requests.Session:
    """A requests session that connects to public addresses only (and to ``allowed_hosts``).

    A refused address raises ``InvalidIPAddress`` (a ``requests.RequestException``) before any
    byte is sent; ``timeout`` applies to connecting and to each read.
    """
    session = HTTPSession(
        Config(
            ip_filter_enable=True,
            ip_filter_allow_loopback_ips=False,
            never_redirect=False,
            default_timeout=(timeout, timeout),
            user_agent_override=user_agent,
        )
    )
    allowed = _hosts(allowed_hosts)
    session.mount("http://", _AllowListAdapter(is_https_proto=False, allowed=allowed))
    session.mount("https://", _AllowListAdapter(is_https_proto=True, allowed=allowed))
    session.max_redirects = max_redirects
    # Proxy variables from the environment would make the proxy, not the target, the checked host.
    session.trust_env = False
    return session


def host_refused(url: str, *, allowed_hosts: Iterable[str]) -> str | None:
    """The address ``url``'s host resolves to now if the guard would refuse it, else None.

    For an early, clear answer when a URL is registered (a webhook); the check that counts is the
    one at connect time, since a name may resolve elsewhere later. A name that does not resolve
    now is not refused here (it fails, or is refused, when it is used).
    """
    parts = urlsplit(url)
    hostname = (parts.hostname or "").lower()
    if not hostname or hostname in _hosts(allowed_hosts):
        return None
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        filter_host(hostname, port, allow_loopback=False)
    except InvalidIPAddress as exc:
        return str(exc)
    except requests.RequestException:  # does not resolve (or times out) now
        return None
    return None
