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


def current_token() -> dict:
    """The scoped API token the request being served authenticated with, as the audit log names
    it (``{"token": name, "token_prefix": the key's visible start}``); empty for a user's own token,
    a session, or outside a request. DRF puts its authenticator's ``auth`` on the request."""
    request = _request.get()
    auth = getattr(request, "auth", None) if request is not None else None
    prefix = getattr(auth, "prefix", None)
    if not isinstance(prefix, str):
        return {}
    return {"token": getattr(auth, "name", ""), "token_prefix": prefix}
