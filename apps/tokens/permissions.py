"""The scope of a scoped token, enforced on every API view (REST_FRAMEWORK's default permissions).

Runs before the view looks anything up, so a refusal says nothing about the objects named: a
``workspace`` query parameter naming another workspace is a 404 (as for a stranger), a route
outside the scope a 403 whose ``detail`` names the scope. The body is not read here: a refused
upload is not parsed first; a body's ``workspace`` is the tenancy base's to check (404 too) once
the scope allows the route. Calls with a user's token or a session pass through untouched.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from apps.core.ids import parse_uuid

from .models import ScopedToken
from .scopes import scope_allows, scope_refusal

MSG_WORKSPACE_NOT_FOUND = "Workspace not found."


class TokenScopePermission(BasePermission):
    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, ScopedToken):
            return True
        named = parse_uuid(request.query_params.get("workspace"))
        if named is not None and named != token.workspace_id:
            raise exceptions.NotFound(MSG_WORKSPACE_NOT_FOUND)
        access = getattr(view, "access_kind", None)
        if not scope_allows(scope=token.scope, access=access, method=request.method):
            raise exceptions.PermissionDenied(scope_refusal(scope=token.scope, access=access))
        return True
