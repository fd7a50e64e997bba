"""The API tokens section of the Members page, for the workspace's owner: issue a scoped token
(its key shown once, in the answer that issues it) and revoke one. The same services and
selectors as ``/account/v2/workspace/{id}/tokens/``."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError, NotFoundError
from apps.tokens import selectors as token_selectors
from apps.tokens import services as token_services

from ..forms import ScopedTokenForm
from ..tenancy import page, workspace_view
from .account import members_page, tokens_context

MSG_NOT_FOUND = "Token not found."


@require_POST
@workspace_view
def token_create(request):
    try:
        token_services.scoped_token_owner_check(workspace=request.workspace, user=request.user)
    except DomainError as exc:
        return page(request, "console/error.html", {"message": exc.message}, status=exc.status_code)
    form = ScopedTokenForm(request.POST)
    if not form.is_valid():
        return members_page(request, tokens_context(request, form), status=400)
    expires_on = form.cleaned_data.get("expires_on")
    try:
        token, key = token_services.scoped_token_create(
            workspace=request.workspace,
            actor=request.user,
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
            # The token stops working as that day begins (UTC), as the form says.
            expires=datetime.combine(expires_on, time(0), tzinfo=UTC) if expires_on else None,
        )
    except DomainError as exc:
        form.add_error(None, exc.message)
        return members_page(request, tokens_context(request, form), status=exc.status_code)
    return members_page(request, tokens_context(request, created=token, key=key))


@require_POST
@workspace_view
def token_revoke(request, token_id):
    token = token_selectors.scoped_token_get(workspace=request.workspace, token_id=token_id)
    if token is None:
        raise NotFoundError(MSG_NOT_FOUND)
    try:
        token_services.scoped_token_revoke(token=token, actor=request.user)
        messages.success(request, f"The token {token.name} was revoked.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("console:members")
