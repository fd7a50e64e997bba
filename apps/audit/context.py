"""Who is acting now: the request being served, kept in a context variable by the middleware.

Model signals (deletes in cascades, a token saved) carry no request; the audit log reads the
actor and address from here. The user is read when an event is recorded, not when the request
starts: DRF authenticates a token inside the view, after the middleware ran.
"""

from __future__ import annotations

from contextvars import ContextVar

_request: ContextVar = ContextVar("audit_request", default=None)


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def current_actor():
    """(user or None, ip or None) of the request being served; (None, None) outside one."""
    request = _request.get()
    if request is None:
        return None, None
    user = getattr(request, "user", None)
    user = user if user is not None and user.is_authenticated else None
    return user, request.META.get("REMOTE_ADDR") or None
