"""The console's one tenancy base: every console page acts on the signed-in user's current workspace.

``workspace_view`` wraps each view: it requires a session, resolves ``request.workspace`` (the one
picked with the switcher, kept in the session, re-checked on every request with the same selector
the API's tenancy base uses; else the user's default workspace) and turns "not found in this
workspace" into the console's 404 page. Views then read through selectors that take that
workspace, so another tenant's task, image or version is a 404, never a 403 that leaks it.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from apps.core.errors import NotFoundError
from apps.workspaces.models import Workspace
from apps.workspaces.selectors import workspace_get_for_user, workspace_list_for_user
from apps.workspaces.services import workspace_ensure_default

SESSION_KEY = "console_workspace"


def current_workspace(request) -> Workspace:
    """The workspace the console acts on: the session's pick if the user is still a member of it."""
    picked = request.session.get(SESSION_KEY)
    workspace = workspace_get_for_user(user=request.user, workspace_id=picked) if picked else None
    if workspace is None:
        workspace = workspace_ensure_default(user=request.user)
        request.session[SESSION_KEY] = str(workspace.pk)
    return workspace


def workspace_switch(request, workspace_id) -> Workspace:
    """Make ``workspace_id`` the current workspace (NotFoundError unless the user is a member)."""
    workspace = workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    if workspace is None:
        raise NotFoundError("Workspace not found.")
    request.session[SESSION_KEY] = str(workspace.pk)
    return workspace


def not_found(request):
    return render(request, "console/404.html", status=404)


def workspace_view(view):
    """Sign-in required; ``request.workspace`` set; NotFoundError and Http404 answer the 404 page."""

    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        request.workspace = current_workspace(request)
        try:
            return view(request, *args, **kwargs)
        except (NotFoundError, Http404):
            return not_found(request)

    return wrapped


def page(request, template: str, context: dict | None = None, status: int = 200):
    """Render a console page with what the header needs (the workspace switcher)."""
    workspaces = list(workspace_list_for_user(user=request.user))
    base = {
        "workspace": request.workspace,
        "workspaces": workspaces,
        "parallel_uploads": settings.VF_CONSOLE_PARALLEL_UPLOADS,
    }
    return render(request, template, {**base, **(context or {})}, status=status)
