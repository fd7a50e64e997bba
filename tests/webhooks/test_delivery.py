"""Deliveries to a real HTTP receiver on loopback (allowed by the test's setting): the signature,
the headers and body, retries with the attempt log, what is never retried, and the SSRF guard at
delivery time. Jobs run inline when the transaction's on-commit callbacks run."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from apps.webhooks import jobs, services
from apps.webhooks.models import WebhookDelivery
from apps.webhooks.signing import signature
from tests.servers import free_port

BASE = "/recognition/v2/webhook/"
FINISHED = "training.finished"


@pytest.fixture
def hook(workspace, user, receiver):
    return services.webhook_create(workspace=workspace, actor=user, url=receiver.url, events=[FINISHED])


def emit(workspace, capture, event=FINISHED, payload=None):
    with capture(execute=True):
        return services.webhook_event_emit(workspace=workspace, event=event, payload=payload or {"n": 1})


def test_a_ping_reaches_the_receiver_signed_with_the_secret_shown_at_creation(
    api, workspace, receiver, django_capture_on_commit_callbacks
):
    created = api.post(BASE, {"url": receiver.url, "events": [FINISHED]}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        delivery_id = api.post(f"{BASE}{created['id']}/test/").json()["id"]

    (request,) = receiver.wait_for(1)
    assert request.path == "/hook"
    assert request.signed_with(created["secret"])
    assert not request.signed_with(created["secret"] + "0")
    assert request.headers["x-signature-256"] == signature(created["secret"], request.body)
    assert request.headers["x-signature-256"].startswith("sha256=")
    assert request.event == "ping" and request.delivery == delivery_id
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == services.USER_AGENT
    body = request.json
    assert body["id"] == delivery_id and body["event"] == "ping" and body["workspace"] == str(workspace.pk)
    assert body["data"]["webhook"] == created["id"]

    log = api.get(f"{BASE}{created['id']}/deliveries/").json()["results"]
    assert len(log) == 1
    assert log[0]["status"] == "DELIVERED" and log[0]["attempts"] == 1 and log[0]["response_status"] == 200
    assert log[0]["error"] == "" and log[0]["finished"] and log[0]["next_attempt"] is None
    (attempt,) = log[0]["attempt_log"]
    assert set(attempt) == {"attempt", "status_code", "error", "duration_ms", "created"}
    assert attempt["attempt"] == 1 and attempt["status_code"] == 200 and attempt["error"] == ""
    assert attempt["duration_ms"] > 0
    # What the log shows is what was sent, byte for byte.
    assert log[0]["payload"] == json.loads(request.body)


def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt(
    api, workspace, hook, receiver, django_capture_on_commit_callbacks
):
    receiver.statuses = [500, 503]
    (delivery,) = emit(workspace, django_capture_on_commit_callbacks, payload={"model": {"version": 3}})

    requests = receiver.wait_for(3)
    assert [r.status for r in requests] == [500, 503, 200]
    # Every attempt sends the same bytes, the same signature and the same delivery id.
    assert len({r.body for r in requests}) == 1
    assert len({r.headers["x-signature-256"] for r in requests}) == 1
    assert {r.delivery for r in requests} == {str(delivery.pk)}
    assert all(r.signed_with(hook.secret) for r in requests)
    assert requests[0].json["data"] == {"model": {"version": 3}}

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED and delivery.attempts == 3
    log = api.get(f"{BASE}{hook.pk}/deliveries/").json()["results"][0]["attempt_log"]
    assert [(a["attempt"], a["status_code"], a["error"]) for a in log] == [
        (1, 500, services.MSG_HTTP_STATUS.format(status=500)),
        (2, 503, services.MSG_HTTP_STATUS.format(status=503)),
        (3, 200, ""),
    ]
    assert all(a["duration_ms"] > 0 for a in log)


def test_the_wait_between_attempts_doubles_from_the_base(settings):
    settings.VF_WEBHOOKS_RETRY_BASE_S = 30
    assert [jobs.retry_delay(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]


def test_a_delivery_out_of_attempts_is_failed_with_the_last_error(
    workspace, hook, receiver, settings, django_capture_on_commit_callbacks
):
    settings.VF_WEBHOOKS_MAX_ATTEMPTS = 3
    receiver.statuses = [500, 500, 500, 500]
    (delivery,) = emit(workspace, django_capture_on_commit_callbacks)

    assert len(receiver.wait_for(3)) == 3
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED and delivery.attempts == 3
    assert delivery.response_status == 500 and delivery.error == services.MSG_HTTP_STATUS.format(status=500)
    assert delivery.finished is not None and delivery.next_attempt is None
    assert len(receiver.received) == 3  # no fourth


def test_a_redirect_is_neither_followed_nor_retried(
    workspace, hook, receiver, django_capture_on_commit_callbacks
):
    receiver.statuses = [302]
    (delivery,) = emit(workspace, django_capture_on_commit_callbacks)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED and delivery.attempts == 1
    assert delivery.error == services.MSG_REDIRECT.format(status=302)
    assert [r.path for r in receiver.received] == ["/hook"]


def test_a_receiver_that_does_not_answer_in_time_is_an_error(
    workspace, hook, receiver, settings, django_capture_on_commit_callbacks
):
    settings.VF_WEBHOOKS_TIMEOUT_S = 1
    settings.VF_WEBHOOKS_MAX_ATTEMPTS = 1
    receiver.delay = 2.5
    (delivery,) = emit(workspace, django_capture_on_commit_callbacks)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.error == services.MSG_TIMEOUT.format(seconds=1) and delivery.response_status is None
    attempt = delivery.attempt_log.get()
    assert attempt.status_code is None and 900 < attempt.duration_ms < 2400


def test_a_receiver_nobody_listens_on_is_retried_then_failed(
    workspace, user, settings, receiver, django_capture_on_commit_callbacks
):
    settings.VF_WEBHOOKS_MAX_ATTEMPTS = 2
    url = f"http://127.0.0.1:{free_port()}/hook"
    services.webhook_create(workspace=workspace, actor=user, url=url, events=[FINISHED])
    (delivery,) = emit(workspace, django_capture_on_commit_callbacks)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED and delivery.attempts == 2
    assert delivery.error.startswith("Could not connect: ConnectionError")


def test_a_loopback_target_is_refused_at_delivery_time_without_the_setting(
    workspace, hook, receiver, settings, django_capture_on_commit_callbacks
):
    # Registered while the host was allowed; the administrator has withdrawn it since.
    settings.VF_WEBHOOKS_ALLOWED_HOSTS = []
    (delivery,) = emit(workspace, django_capture_on_commit_callbacks)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED and delivery.attempts == 1  # not retried
    assert delivery.error == services.MSG_REFUSED.format(address="127.0.0.1")
    assert receiver.received == []


def test_a_name_that_resolves_to_loopback_is_refused_at_delivery_time(
    workspace, user, receiver, settings, django_capture_on_commit_callbacks
):
    # "localhost" is not the allowed "127.0.0.1", though it resolves to it: an allowance is for a name.
    port = receiver.server.server_address[1]
    hook = services.webhook_create(workspace=workspace, actor=user, url=receiver.url, events=[FINISHED])
    hook.url = f"http://localhost:{port}/hook"  # as if the name resolved elsewhere when registered
    hook.save(update_fields=["url"])
    (delivery,) = emit(workspace, django_capture_on_commit_callbacks)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.error.startswith("Refused: the host resolves to ")
    assert receiver.received == []


def test_only_active_webhooks_subscribed_to_the_event_get_it(
    workspace, user, receiver, django_capture_on_commit_callbacks
):
    wanted = services.webhook_create(
        workspace=workspace, actor=user, url=receiver.url + "/a", events=[FINISHED]
    )
    services.webhook_create(
        workspace=workspace, actor=user, url=receiver.url + "/b", events=["training.failed"]
    )
    services.webhook_create(
        workspace=workspace, actor=user, url=receiver.url + "/c", events=[FINISHED], is_active=False
    )
    deliveries = emit(workspace, django_capture_on_commit_callbacks)

    assert [d.webhook_id for d in deliveries] == [wanted.pk]
    assert [r.path for r in receiver.received] == ["/hook/a"]


def test_another_workspaces_event_reaches_none_of_this_workspaces_webhooks(
    hook, other_user, receiver, django_capture_on_commit_callbacks
):
    from apps.workspaces.services import workspace_ensure_default

    other = workspace_ensure_default(user=other_user)
    assert emit(other, django_capture_on_commit_callbacks) == []
    assert receiver.received == []


def test_an_event_whose_transaction_rolls_back_sends_nothing(
    workspace, hook, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            services.webhook_event_emit(workspace=workspace, event=FINISHED, payload={})
            raise RuntimeError("the event's own write failed")
    assert not WebhookDelivery.objects.exists()
    assert receiver.received == []


def test_a_webhook_disabled_before_its_delivery_is_not_posted_to(workspace, hook, receiver):
    (delivery,) = services.webhook_event_emit(workspace=workspace, event=FINISHED, payload={})
    hook.is_active = False
    hook.save(update_fields=["is_active"])
    jobs.deliver_webhook.delay(str(delivery.pk))

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED and delivery.error == services.MSG_DISABLED
    assert receiver.received == []


def test_the_job_is_safe_to_run_again_and_after_its_webhook_is_gone(workspace, hook, receiver):
    (delivery,) = services.webhook_event_emit(workspace=workspace, event=FINISHED, payload={})
    jobs.deliver_webhook.delay(str(delivery.pk))
    jobs.deliver_webhook.delay(str(delivery.pk))  # a redelivered message: DELIVERED already
    assert len(receiver.received) == 1

    (again,) = services.webhook_event_emit(workspace=workspace, event=FINISHED, payload={})
    hook.delete()
    jobs.deliver_webhook.delay(str(again.pk))  # its retry was queued when the webhook was deleted
    assert len(receiver.received) == 1


def test_an_unknown_event_is_a_programming_error(workspace):
    with pytest.raises(ValueError, match="Unknown event 'training.paused'"):
        services.webhook_event_emit(workspace=workspace, event="training.paused", payload={})


def test_an_event_while_the_broker_was_down_is_delivered_by_the_sweep_once_it_is_back(
    workspace, hook, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from config.celery import app

    previous = (app.conf.broker_url, app.conf.task_always_eager)
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: a real refused connection
    monkeypatch.setenv("CELERY_BROKER_URL", dead)
    app.conf.broker_url, app.conf.task_always_eager = dead, False
    try:
        (delivery,) = emit(workspace, django_capture_on_commit_callbacks)
    finally:
        monkeypatch.undo()
        app.conf.broker_url, app.conf.task_always_eager = previous
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.PENDING, 0)
    assert receiver.received == []

    # Not yet stranded: its message may still be on its way.
    assert services.webhook_deliveries_requeue_stranded() == []
    # Past the grace, the sweep (beat, or a worker that starts) queues it again; it is delivered once.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        created=timezone.now() - timedelta(seconds=services.STRANDED_AFTER_S + 5)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.sweep_stranded_deliveries() == [str(delivery.pk)]
    (request,) = receiver.wait_for(1)
    assert request.delivery == str(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.DELIVERED, 1)
    assert jobs.sweep_stranded_deliveries() == []
