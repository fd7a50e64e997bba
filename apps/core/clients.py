"""The client's address, trusting forwarded headers only as far as configured proxies reach."""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse

MSG_LOCKED_OUT = "Too many failed logins for this username or address; try again in {minutes} minutes."


def client_ip(request) -> str | None:
    """The address a request came from, as login throttling counts it.

    ``X-Forwarded-For`` is a header any client can send, so it is read only when
    ``VF_NUM_PROXIES`` proxies are in front of the service, and then only the entry the nearest
    trusted proxy appended (the same rule as DRF's throttles with ``NUM_PROXIES``). Without
    proxies it is the socket's address, whatever the headers say.
    """
    proxies = settings.VF_NUM_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies > 0 and forwarded:
        addresses = [address.strip() for address in forwarded.split(",") if address.strip()]
        if addresses:
            return addresses[-min(proxies, len(addresses))]
    return request.META.get("REMOTE_ADDR")


def lockout_response(request, original_response=None, credentials=None) -> JsonResponse:
    """django-axes' answer to a login refused for too many failures: JSON like every other error."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return JsonResponse({"detail": MSG_LOCKED_OUT.format(minutes=minutes)}, status=429)
