"""The tenancy base viewset: every workspace-owned endpoint derives from it.

It resolves the workspace a call acts on (``workspace`` query parameter, else the ``workspace``
field of the body, else the caller's default workspace) and scopes ``get_queryset()`` to it. A
workspace the caller is not a member of is a 404, so its existence never leaks.

A call made with a scoped token (apps/tokens) is bound to the token's workspace: ``request.auth``
has that ``workspace``, which is the default, and naming any other is a 404. What the token's
scope allows is decided before (apps/tokens/permissions.py) by the view's ``access_kind``.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, viewsets

from apps.core.ids import WORKSPACE_PATTERN, parse_uuid

from .models import Workspace
from .selectors import workspace_get_for_user
from .services import workspace_ensure_default

MSG_WORKSPACE_NOT_FOUND = "Workspace not found."
MSG_WORKSPACE_INVALID = "Give a workspace id (a UUID), or leave workspace out for your default workspace."
# The Ximilar client names the caller's default workspace with this literal (its DEFAULT_WORKSPACE),
# e.g. in the body of modify_images and on objects without a workspace field.
DEFAULT_WORKSPACE_ALIAS = "default"

WORKSPACE_PARAMETER = OpenApiParameter(
    "workspace",
    {"type": "string", "pattern": WORKSPACE_PATTERN},
    OpenApiParameter.QUERY,
    description=(
        "Workspace to act on (or a `workspace` body field); default: the caller's default workspace. "
        "`Default`, the Ximilar client's name for it, is accepted too."
    ),
)


def requested_workspace(request):
    """What the request names as its workspace (query parameter, else body field), or None."""
    workspace_id = request.query_params.get("workspace")
    if workspace_id is None and request.method not in ("GET", "HEAD", "OPTIONS", "DELETE"):
        data = request.data
        if hasattr(data, "get"):
            workspace_id = data.get("workspace")
    return workspace_id


def bound_workspace(request) -> Workspace | None:
    """The workspace a scoped token binds the call to, or None for a user's token or a session."""
    workspace = getattr(getattr(request, "auth", None), "workspace", None)
    return workspace if isinstance(workspace, Workspace) else None


def resolve_workspace(request) -> Workspace:
    """The workspace named by the request, or the caller's default; 404 if not a member.

    A ``workspace`` that is given but names no workspace (empty, not a UUID) is a 400: silently
    acting on the default workspace instead would write where the caller did not mean to."""
    workspace_id = requested_workspace(request)
    bound = bound_workspace(request)
    if workspace_id is None or str(workspace_id).lower() == DEFAULT_WORKSPACE_ALIAS:
        return bound if bound is not None else workspace_ensure_default(user=request.user)
    if not isinstance(workspace_id, str) or len(workspace_id) != 36 or parse_uuid(workspace_id) is None:
        raise exceptions.ValidationError({"workspace": [MSG_WORKSPACE_INVALID]})
    if bound is not None:
        if parse_uuid(workspace_id) != bound.pk:
            raise exceptions.NotFound(MSG_WORKSPACE_NOT_FOUND)
        return bound
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    if workspace is None:
        raise exceptions.NotFound(MSG_WORKSPACE_NOT_FOUND)
    return workspace


class WorkspaceScopedViewSet(viewsets.GenericViewSet):
    """Base for every endpoint whose objects live in a workspace.

    Subclasses implement ``get_workspace_queryset(workspace)`` (usually a selector) instead of
    setting ``queryset``; ``get_queryset()`` always filters by the resolved workspace, so no
    endpoint can forget to.
    """

    workspace_field = "workspace"
    # What a scoped token may do here (apps/tokens/scopes.py): "data" for a workspace's objects;
    # the predict endpoints say "predict". A view without it is the account's: no scoped token.
    access_kind = "data"

    def initial(self, request, *args, **kwargs):
        # Authentication, permissions and throttles first: an anonymous call is a 401, never a 404.
        super().initial(request, *args, **kwargs)
        # A method the view does not serve (TRACE, or DELETE on a list) is a 405 whatever the
        # workspace says: dispatch() answers it after initial() with no handler to call.
        if getattr(self, request.method.lower(), None) is None:
            return
        self.workspace = resolve_workspace(request)

    def get_workspace_queryset(self, workspace: Workspace) -> QuerySet:
        raise ImproperlyConfigured(f"{type(self).__name__} must define get_workspace_queryset()")

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return self.get_workspace_queryset(None).none()
        queryset = self.get_workspace_queryset(self.workspace)
        return queryset.filter(**{self.workspace_field: self.workspace})

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["workspace"] = getattr(self, "workspace", None)
        return context
