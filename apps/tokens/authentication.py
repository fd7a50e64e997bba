"""``Authorization: Token vfs_...``: a scoped token, in the same header as a user's token.

It authenticates as the workspace's owner (so throttles, the audit log's actor and the owner's
rules apply as to the owner), with ``request.auth`` the token: the tenancy base viewset binds the
call to the token's workspace (apps/workspaces/tenancy.py) and the scope permission
(permissions.py) decides what it may do there.

Nothing is cached: one indexed query per request (the token with its workspace and owner), so a
revoked (deleted) or expired token is refused at once by every process and machine. A key
without the ``vfs_`` prefix is left to the user-token authentication that follows this one in
REST_FRAMEWORK's list.
"""

from __future__ import annotations

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header

from .keys import KEY_LENGTH, is_scoped_key
from .selectors import scoped_token_for_key

MSG_INVALID = "Invalid token."
MSG_EXPIRED = "The token has expired."
MSG_INACTIVE = "User inactive or deleted."


class ScopedTokenAuthentication(TokenAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != self.keyword.lower().encode():
            return None  # no token, or a malformed header: the user-token class answers it
        try:
            key = parts[1].decode()
        except UnicodeError:
            return None
        if not is_scoped_key(key):
            return None
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key):
        token = scoped_token_for_key(key=key) if len(key) == KEY_LENGTH else None
        if token is None:
            raise exceptions.AuthenticationFailed(MSG_INVALID)
        if token.expires is not None and token.expires <= timezone.now():
            raise exceptions.AuthenticationFailed(MSG_EXPIRED)
        owner = token.workspace.owner
        if not owner.is_active:
            raise exceptions.AuthenticationFailed(MSG_INACTIVE)
        # Imported here: DRF imports this class while it defines APIView, and the services need
        # modules (apps.core.errors) that import APIView's module in turn.
        from .services import scoped_token_touch

        scoped_token_touch(token=token)
        return owner, token
