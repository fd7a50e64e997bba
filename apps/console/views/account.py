"""Sign-in, sign-out, password change, the workspace switcher and member management.

Sign-in is Django's LoginView: ``authenticate`` runs through django-axes' backend, so failed
console logins count towards the same lockout as the API's token endpoint and the admin.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from apps.audit import selectors as audit_selectors
from apps.core import clients
from apps.core.errors import DomainError
from apps.tokens import selectors as token_selectors
from apps.workspaces import selectors as workspace_selectors
from apps.workspaces import services as workspace_services

from ..forms import MemberForm, ScopedTokenForm, WorkspaceSwitchForm
from ..tenancy import page, workspace_switch, workspace_view


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE): the console's sign-in
    gets a page, every other login (token endpoint, admin) the API's JSON 429."""
    if not request.path.startswith("/console/"):
        return clients.lockout_response(request, original_response, credentials)
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = clients.MSG_LOCKED_OUT.format(minutes=minutes)
    return render(request, "console/locked_out.html", {"message": message}, status=429)


class LoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True
    next_page = "console:home"  # unless a safe ?next= says where


class LogoutView(auth_views.LogoutView):
    next_page = "console:login"


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "console/password_change.html"
    success_url = reverse_lazy("console:password-change-done")


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "console/password_change_done.html"


@require_POST
@workspace_view
def switch(request):
    form = WorkspaceSwitchForm(request.POST)
    if form.is_valid():
        workspace_switch(request, form.cleaned_data["workspace"])
    return redirect("console:task-list")


@workspace_view
def members(request):
    workspace = request.workspace
    form = MemberForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                workspace_services.membership_add(
                    workspace=workspace,
                    actor=request.user,
                    username_or_email=form.cleaned_data["username_or_email"],
                )
                messages.success(request, f"{form.cleaned_data['username_or_email']} is now a member.")
                return redirect("console:members")
            except DomainError as exc:
                form.add_error(None, exc.message)
                status = exc.status_code
        else:
            status = 400
    return members_page(request, {"form": form, **tokens_context(request)}, status=status)


def tokens_context(request, form: ScopedTokenForm | None = None, created=None, key: str = "") -> dict:
    """What the Members page shows of the tokens: nothing for a member who is not the owner."""
    if request.workspace.owner_id != request.user.pk:
        return {}
    return {
        "tokens": token_selectors.scoped_token_list(workspace=request.workspace),
        "token_form": form or ScopedTokenForm(),
        # Shown in this answer only; a reload of the page (GET) no longer has it.
        "created_token": created,
        "created_key": key,
    }


def members_page(request, context: dict, status: int = 200):
    """The Members page: the members, the add-a-member form, and for the owner the API tokens."""
    workspace = request.workspace
    context = {
        "memberships": workspace_selectors.membership_list(workspace=workspace),
        "form": MemberForm(),
        "is_owner": workspace.owner_id == request.user.pk,
        **context,
    }
    return page(request, "console/members.html", context, status=status)


@require_POST
@workspace_view
def member_remove(request, user_id: int):
    try:
        workspace_services.membership_remove(workspace=request.workspace, actor=request.user, user_id=user_id)
        messages.success(request, "The member was removed.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("console:members")


AUDIT_PAGE_SIZE = 50


@workspace_view
def audit_log(request):
    """The current workspace's audit log, newest first, 50 a page; only its owner reads it."""
    try:
        events = audit_selectors.audit_event_list(workspace=request.workspace, user=request.user)
    except DomainError as exc:
        return page(request, "console/error.html", {"message": exc.message}, status=exc.status_code)
    events_page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return page(request, "console/audit_log.html", {"events": events_page})
