"""Webhooks: register, change, delete and test them; emit an event; make one delivery attempt.

An event becomes one delivery per subscribed, active webhook of the workspace
(``webhook_event_emit``): a row holding the exact JSON body, enqueued after the transaction
commits. The job (apps/webhooks/jobs.py) calls ``webhook_delivery_attempt`` for each try: one
signed POST through the SSRF guard (apps/core/outbound.py), recorded as a ``WebhookAttempt``
(number, status code or error, duration); it owns the retries and their backoff.

Only the workspace's owner manages its webhooks (the URLs may hold the receiver's own tokens, and
the log shows what was sent). Every URL is checked when it is registered, and again by the guard
when a delivery connects (a name may resolve elsewhere by then).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.broker import job_enqueue
from apps.core.errors import DomainError, PermissionDeniedError
from apps.core.outbound import InvalidIPAddress, guarded_session, host_refused
from apps.training.models import ModelVersion

from . import events as ev
from .job_names import DELIVER_JOB
from .models import Webhook, WebhookAttempt, WebhookDelivery
from .signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature

logger = logging.getLogger(__name__)

MAX_WEBHOOKS_PER_WORKSPACE = 20
MAX_URL_LENGTH = 2000
USER_AGENT = "VisionForge-Webhooks/1"
_EVENT_NAMES = ", ".join(ev.EVENTS)

MSG_ONLY_OWNER = "Only the owner of the workspace can manage its webhooks."
MSG_URL_INVALID = "Give the webhook's URL as http(s)://host[:port]/path."
MSG_URL_SCHEME = "The webhook URL must start with http:// or https://."
MSG_URL_TOO_LONG = f"The webhook URL is longer than {MAX_URL_LENGTH} characters."
MSG_URL_REFUSED = (
    "The webhook URL's host resolves to {address}, a private, loopback or otherwise non-public "
    "address. Webhooks are sent to public addresses only, unless an administrator allows the host "
    "(VF_WEBHOOKS_ALLOWED_HOSTS)."
)
MSG_EVENTS_EMPTY = f"Choose at least one event: {_EVENT_NAMES}."
MSG_EVENT_UNKNOWN = "Unknown event {event!r}; the events are " + _EVENT_NAMES + "."
MSG_TOO_MANY = f"A workspace has at most {MAX_WEBHOOKS_PER_WORKSPACE} webhooks; delete one first."
# What an attempt's log says.
MSG_DISABLED = "The webhook was disabled before this delivery was sent."
MSG_HTTP_STATUS = "The receiver answered HTTP {status}."
MSG_REDIRECT = "The receiver answered HTTP {status}, a redirect; webhooks do not follow redirects."
MSG_TIMEOUT = "No answer within {seconds} s."
MSG_UNREACHABLE = "Could not connect: {reason}"
MSG_REFUSED = (
    "Refused: the host resolves to {address}, a non-public address (an administrator may allow the "
    "host with VF_WEBHOOKS_ALLOWED_HOSTS)."
)
MAX_ERROR_LENGTH = 500


# --------------------------------------------------------------------------- managing webhooks


def webhook_owner_check(*, workspace, user) -> None:
    """Raise PermissionDeniedError (403) unless ``user`` owns ``workspace``."""
    if workspace.owner_id != user.pk:
        raise PermissionDeniedError(MSG_ONLY_OWNER)


def _clean_url(url) -> str:
    if not isinstance(url, str) or not url.strip():
        raise DomainError(MSG_URL_INVALID)
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise DomainError(MSG_URL_TOO_LONG)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise DomainError(MSG_URL_INVALID) from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise DomainError(MSG_URL_SCHEME)
    if not parts.hostname or any(char.isspace() for char in url):
        raise DomainError(MSG_URL_INVALID)
    refused = host_refused(url, allowed_hosts=settings.VF_WEBHOOKS_ALLOWED_HOSTS)
    if refused:
        raise DomainError(MSG_URL_REFUSED.format(address=refused))
    return url


def _clean_events(events) -> list[str]:
    if not isinstance(events, (list, tuple)) or not events:
        raise DomainError(MSG_EVENTS_EMPTY)
    for event in events:
        if event not in ev.EVENTS:
            raise DomainError(MSG_EVENT_UNKNOWN.format(event=event))
    return [event for event in ev.EVENTS if event in events]  # one each, in a stable order


def webhook_create(
    *, workspace, actor, url: str, events: list[str], description: str = "", is_active: bool = True
) -> Webhook:
    """Register ``url`` for ``events`` of ``workspace`` (its owner only) with a new random secret.

    The URL must be http(s) and, unless its host is in ``VF_WEBHOOKS_ALLOWED_HOSTS``, must not
    resolve to a private, loopback or otherwise non-public address. The returned webhook carries
    its ``secret``; the caller shows it once.
    """
    webhook_owner_check(workspace=workspace, user=actor)
    url, events = _clean_url(url), _clean_events(events)
    if Webhook.objects.filter(workspace=workspace).count() >= MAX_WEBHOOKS_PER_WORKSPACE:
        raise DomainError(MSG_TOO_MANY)
    return Webhook.objects.create(
        workspace=workspace,
        url=url,
        events=events,
        description=description,
        is_active=is_active,
        # 256 bits, as hex: printable, safe in any configuration file.
        secret=secrets.token_hex(32),
        created_by=actor,
    )


def webhook_update(*, webhook: Webhook, actor, data: dict) -> Webhook:
    """Change a webhook's ``url``, ``events``, ``description`` or ``is_active`` (owner only); the
    URL and events are checked as when it was created. The secret stays."""
    webhook_owner_check(workspace=webhook.workspace, user=actor)
    fields = []
    if "url" in data:
        webhook.url = _clean_url(data["url"])
        fields.append("url")
    if "events" in data:
        webhook.events = _clean_events(data["events"])
        fields.append("events")
    for name in ("description", "is_active"):
        if name in data:
            setattr(webhook, name, data[name])
            fields.append(name)
    if fields:
        webhook.save(update_fields=[*fields, "updated"])
    return webhook


def webhook_delete(*, webhook: Webhook, actor) -> None:
    """Delete a webhook (owner only) with its delivery log; a retry still queued finds nothing."""
    webhook_owner_check(workspace=webhook.workspace, user=actor)
    webhook.delete()


def webhook_test(*, webhook: Webhook, actor) -> WebhookDelivery:
    """Send a ``ping`` to the webhook (owner only), through the same queue, signing and retries as
    every event; sent even when the webhook is inactive or does not subscribe to any event yet."""
    webhook_owner_check(workspace=webhook.workspace, user=actor)
    data = {"webhook": str(webhook.pk), "events": webhook.events, "message": "Hello from VisionForge."}
    with transaction.atomic():
        (delivery,) = _deliveries_create([webhook], ev.PING, webhook.workspace_id, data)
    return delivery


# --------------------------------------------------------------------------- emitting events


def _enqueue(delivery_id) -> None:
    try:
        job_enqueue(DELIVER_JOB, str(delivery_id))
    except Exception:
        # The event's own transaction committed: failing its caller (a training) would undo
        # nothing. The delivery stays PENDING in the log, where its owner sees it.
        logger.exception("could not enqueue webhook delivery %s", delivery_id)


def _body(delivery_id, event: str, workspace_id, data: dict) -> str:
    envelope = {
        "id": str(delivery_id),
        "event": event,
        "created": timezone.now(),
        "workspace": str(workspace_id),
        "data": data,
    }
    return json.dumps(envelope, cls=DjangoJSONEncoder, separators=(",", ":"))


def _deliveries_create(webhooks, event: str, workspace_id, data: dict) -> list[WebhookDelivery]:
    deliveries = []
    for webhook in webhooks:
        delivery_id = uuid.uuid4()
        deliveries.append(
            WebhookDelivery.objects.create(
                id=delivery_id,
                workspace_id=workspace_id,
                webhook=webhook,
                event=event,
                body=_body(delivery_id, event, workspace_id, data),
            )
        )
        # After the commit: the job must find the row (and a rolled-back event sends nothing).
        transaction.on_commit(partial(_enqueue, delivery_id))
    return deliveries


def webhook_event_emit(*, workspace, event: str, payload: dict) -> list[WebhookDelivery]:
    """Send ``event`` with ``payload`` (the body's ``data``, JSON-serializable) to every active
    webhook of ``workspace`` that subscribes to it; returns the deliveries (none: no subscriber).

    The deliveries are rows written in the caller's transaction; their jobs are enqueued when it
    commits, so an event whose transaction rolls back sends nothing. Each body is
    ``{"id": delivery id, "event", "created", "workspace", "data": payload}``.
    """
    if event not in ev.EVENTS:
        raise ValueError(MSG_EVENT_UNKNOWN.format(event=event))
    workspace_id = getattr(workspace, "pk", workspace)
    # Few webhooks per workspace (MAX_WEBHOOKS_PER_WORKSPACE); JSON lookups differ per database.
    webhooks = [
        webhook
        for webhook in Webhook.objects.filter(workspace_id=workspace_id, is_active=True)
        if event in webhook.events
    ]
    if not webhooks:
        return []
    with transaction.atomic():
        return _deliveries_create(webhooks, event, workspace_id, payload)


def _task_data(task) -> dict:
    return {"id": str(task.pk), "name": task.name, "type": task.type}


def _model_data(version: ModelVersion) -> dict:
    failed = version.train_status == ModelVersion.Status.FAILED
    return {
        "id": str(version.pk),
        "version": version.version,
        "train_status": version.train_status,
        "created": version.created,
        "started": version.started,
        "finished": version.finished,
        "attempts": version.attempts,
        "accuracy": version.accuracy,
        "is_production": version.train_status == ModelVersion.Status.TRAINED
        and version.task.production_version == version.version,
        "error": (version.metrics or {}).get("error") if failed else None,
    }


def webhook_training_event(*, event: str, version: ModelVersion) -> list[WebhookDelivery]:
    """Emit a training event (started, finished, failed) of ``version`` (its ``task`` loaded):
    ``data`` is ``{"task": {id, name, type}, "model": {id, version, train_status, ...}}``."""
    payload = {"task": _task_data(version.task), "model": _model_data(version)}
    return webhook_event_emit(workspace=version.workspace_id, event=event, payload=payload)


def webhook_suggestions_ready(*, run, count: int) -> list[WebhookDelivery]:
    """Emit ``suggestions.ready`` for a finished scoring run (its ``task`` loaded): ``data`` is
    ``{"task": {...}, "run": {id, version, count, finished}}``."""
    payload = {
        "task": _task_data(run.task),
        "run": {"id": str(run.pk), "version": run.version, "count": count, "finished": run.finished},
    }
    return webhook_event_emit(workspace=run.workspace_id, event=ev.SUGGESTIONS_READY, payload=payload)


# --------------------------------------------------------------------------- delivering


@dataclass
class AttemptOutcome:
    """What one attempt did: its number, whether the receiver took it, and whether trying again
    could change that (not for a refused address or a redirect)."""

    number: int
    delivered: bool
    retryable: bool
    error: str = ""


def _post(url: str, body: bytes, headers: dict) -> tuple[int | None, str, bool]:
    """POST ``body``: (status code or None, error or "", retryable)."""
    timeout = settings.VF_WEBHOOKS_TIMEOUT_S
    try:
        session = guarded_session(
            allowed_hosts=settings.VF_WEBHOOKS_ALLOWED_HOSTS,
            timeout=timeout,
            user_agent=USER_AGENT,
            # Never followed (allow_redirects=False below); requests still looks one ahead to
            # offer ``response.next``, and a limit of 0 would make that look-ahead raise.
            max_redirects=1,
        )
        # stream: the answer's status is all we need; its body is never read, so a receiver
        # that drips one cannot hold the worker.
        with (
            session,
            session.post(url, data=body, headers=headers, allow_redirects=False, stream=True) as answer,
        ):
            status = answer.status_code
    except InvalidIPAddress as exc:
        return None, MSG_REFUSED.format(address=exc), False
    except requests.Timeout:
        return None, MSG_TIMEOUT.format(seconds=timeout), True
    except requests.RequestException as exc:
        return None, MSG_UNREACHABLE.format(reason=f"{type(exc).__name__}: {exc}")[:MAX_ERROR_LENGTH], True
    if 200 <= status < 300:
        return status, "", False
    if 300 <= status < 400:
        return status, MSG_REDIRECT.format(status=status), False
    return status, MSG_HTTP_STATUS.format(status=status), True


def webhook_delivery_attempt(*, delivery_id) -> AttemptOutcome | None:
    """Make the next attempt of a PENDING delivery and record it; None when there is nothing to do
    (the delivery is gone with its webhook, or already DELIVERED or FAILED: safe to run twice).

    The POST happens outside any transaction (no row is locked while a receiver thinks). A
    delivery to a webhook disabled meanwhile fails without a POST (a ping is sent regardless).
    """
    delivery = (
        WebhookDelivery.objects.select_related("webhook")
        .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING)
        .first()
    )
    if delivery is None:
        return None
    webhook = delivery.webhook
    if not webhook.is_active and delivery.event != ev.PING:
        status, error, retryable, duration_ms = None, MSG_DISABLED, False, 0.0
    else:
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(webhook.secret, body),
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: str(delivery.pk),
        }
        started = time.perf_counter()
        status, error, retryable = _post(webhook.url, body, headers)
        duration_ms = (time.perf_counter() - started) * 1000
    delivered = not error
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        number = delivery.attempts + 1
        WebhookAttempt.objects.create(
            delivery=delivery, number=number, status_code=status, error=error, duration_ms=duration_ms
        )
        delivery.attempts, delivery.response_status, delivery.error = number, status, error
        delivery.next_attempt = None
        if delivered:
            delivery.status, delivery.finished = WebhookDelivery.Status.DELIVERED, timezone.now()
        delivery.save(
            update_fields=["attempts", "response_status", "error", "next_attempt", "status", "finished"]
        )
    if not delivered:
        logger.info("webhook delivery %s, attempt %d: %s", delivery.pk, number, error)
    return AttemptOutcome(number=number, delivered=delivered, retryable=retryable, error=error)


def webhook_delivery_retry_later(*, delivery_id, delay: float) -> None:
    """Note when the next attempt of a PENDING delivery is due (the log shows it)."""
    WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).update(
        next_attempt=timezone.now() + timedelta(seconds=delay)
    )


def webhook_delivery_fail(*, delivery_id) -> None:
    """Give a PENDING delivery up: FAILED, with its latest attempt's error."""
    WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).update(
        status=WebhookDelivery.Status.FAILED, next_attempt=None, finished=timezone.now()
    )


# --------------------------------------------------------------------------- stranded deliveries

# A PENDING delivery has a message on its way: its first attempt's, or the retry's (due at
# ``next_attempt``). Past this grace beyond when it was due, the message is taken as lost.
STRANDED_AFTER_S = 120


def webhook_deliveries_requeue_stranded(*, grace_s: float = STRANDED_AFTER_S) -> list:
    """Queue again the PENDING deliveries whose message was lost: never queued (the broker was down
    when the event happened) or dropped (a broker that lost its data, a retry that never came),
    judged by when their next attempt was due, plus ``grace_s``. Their ids; a delivery queued twice
    is attempted once more at most (the attempt takes the row's lock and skips a finished one)."""
    due_before = timezone.now() - timedelta(seconds=grace_s)
    stranded = list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
        .filter(Q(next_attempt__lt=due_before) | Q(next_attempt__isnull=True, created__lt=due_before))
        .order_by("created")
        .values_list("pk", flat=True)[:1000]
    )
    requeued = []
    for delivery_id in stranded:
        # Pushed forward first, so the next sweep leaves it alone while this message is on its way.
        WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).update(
            next_attempt=timezone.now()
        )
        try:
            job_enqueue(DELIVER_JOB, str(delivery_id))
        except Exception:
            logger.warning("webhook sweep: the queue is still unreachable; %s stays PENDING", delivery_id)
            break
        requeued.append(delivery_id)
    return requeued
