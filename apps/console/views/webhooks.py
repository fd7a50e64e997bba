"""The Webhooks page of the current workspace, for its owner: add a webhook (its secret shown once,
in the answer that adds it), send a test, delete one, and the latest deliveries with every attempt
(refreshed while one is pending). The same services and selectors as ``webhook/`` of the API."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError, NotFoundError
from apps.webhooks import selectors as webhook_selectors
from apps.webhooks import services as webhook_services
from apps.webhooks.models import WebhookDelivery

from ..forms import WebhookForm
from ..tenancy import page, workspace_view

RECENT_DELIVERIES = 20
MSG_WEBHOOK_NOT_FOUND = "Webhook not found."


def _refused(request, exc: DomainError):
    return page(request, "console/error.html", {"message": exc.message}, status=exc.status_code)


def _deliveries(request) -> dict:
    deliveries = webhook_selectors.delivery_recent(workspace=request.workspace, limit=RECENT_DELIVERIES)
    pending = any(d.status == WebhookDelivery.Status.PENDING for d in deliveries)
    return {"deliveries": deliveries, "pending": pending}


@workspace_view
def webhooks(request):
    try:
        webhook_services.webhook_owner_check(workspace=request.workspace, user=request.user)
    except DomainError as exc:
        return _refused(request, exc)
    form = WebhookForm(request.POST or None)
    created, status = None, 200
    if request.method == "POST":
        if form.is_valid():
            try:
                created = webhook_services.webhook_create(
                    workspace=request.workspace, actor=request.user, **form.cleaned_data
                )
                form = WebhookForm()
            except DomainError as exc:
                form.add_error(None, exc.message)
                status = exc.status_code
        else:
            status = 400
    context = {
        "form": form,
        # Shown in this answer only; a reload of the page (GET) no longer has it.
        "created": created,
        "webhooks": webhook_selectors.webhook_list(workspace=request.workspace),
        **_deliveries(request),
    }
    return page(request, "console/webhooks.html", context, status=status)


@workspace_view
def webhook_deliveries(request):
    """The deliveries table alone, for htmx to refresh while a delivery is pending."""
    try:
        webhook_services.webhook_owner_check(workspace=request.workspace, user=request.user)
    except DomainError as exc:
        return _refused(request, exc)
    return render(request, "console/_webhook_deliveries.html", _deliveries(request))


def _webhook(request, webhook_id):
    webhook = webhook_selectors.webhook_get(workspace=request.workspace, webhook_id=webhook_id)
    if webhook is None:
        raise NotFoundError(MSG_WEBHOOK_NOT_FOUND)
    return webhook


@require_POST
@workspace_view
def webhook_test(request, webhook_id):
    webhook = _webhook(request, webhook_id)
    try:
        webhook_services.webhook_test(webhook=webhook, actor=request.user)
    except DomainError as exc:
        return _refused(request, exc)
    messages.success(request, f"A ping is on its way to {webhook.url}; its delivery shows below.")
    return redirect("console:webhooks")


@require_POST
@workspace_view
def webhook_delete(request, webhook_id):
    webhook = _webhook(request, webhook_id)
    try:
        webhook_services.webhook_delete(webhook=webhook, actor=request.user)
    except DomainError as exc:
        return _refused(request, exc)
    messages.success(request, f"The webhook to {webhook.url} was deleted.")
    return redirect("console:webhooks")
