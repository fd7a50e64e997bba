"""The console's Webhooks page: the owner adds one (the secret shown once), sends a test that a real
receiver gets, sees the deliveries, deletes one; a member is refused; bad input says why."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.webhooks import services
from apps.webhooks.models import Webhook, WebhookDelivery
from apps.workspaces.services import workspace_ensure_default

PAGE = "/console/workspace/webhooks/"


def signed_in(user, workspace=None) -> Client:
    client = Client()
    client.force_login(user)
    if workspace is not None:
        client.post("/console/workspace/switch/", {"workspace": str(workspace.pk)})
    return client


def test_the_members_page_links_the_owner_to_the_webhooks(user, workspace):
    assert (
        b'href="/console/workspace/webhooks/"' in signed_in(user).get("/console/workspace/members/").content
    )


def test_the_owner_adds_a_webhook_and_sees_its_secret_once(user, workspace, receiver):
    client = signed_in(user)
    response = client.post(PAGE, {"url": receiver.url, "events": ["training.finished", "training.failed"]})
    assert response.status_code == 200
    hook = Webhook.objects.get()
    assert hook.workspace == workspace and hook.events == ["training.finished", "training.failed"]
    assert hook.secret.encode() in response.content
    assert b"shown this once" in response.content

    page = client.get(PAGE)
    assert page.status_code == 200
    assert receiver.url.encode() in page.content and b"training.finished, training.failed" in page.content
    assert hook.secret.encode() not in page.content


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"url": "ftp://example.com/", "events": ["training.failed"]}, services.MSG_URL_SCHEME),
        ({"url": "http://127.0.0.1:9/", "events": ["training.failed"]}, "resolves to 127.0.0.1"),
        ({"url": "https://hooks.example.com/", "events": []}, "This field is required."),
        ({"url": "https://hooks.example.com/", "events": ["ping"]}, "Select a valid choice."),
    ],
    ids=["scheme", "loopback", "no-events", "ping"],
)
def test_bad_input_shows_why_and_adds_nothing(user, workspace, settings, data, message):
    settings.VF_WEBHOOKS_ALLOWED_HOSTS = []
    response = signed_in(user).post(PAGE, data)
    assert response.status_code == 400
    assert message.replace('"', "&quot;").encode() in response.content
    assert not Webhook.objects.exists()


def test_a_test_reaches_the_receiver_and_shows_in_the_deliveries(
    user, workspace, receiver, django_capture_on_commit_callbacks
):
    hook = services.webhook_create(
        workspace=workspace, actor=user, url=receiver.url, events=["training.started"]
    )
    client = signed_in(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{PAGE}{hook.pk}/test/")
    assert response.status_code == 302 and response["Location"] == PAGE

    (request,) = receiver.wait_for(1)
    assert request.event == "ping" and request.signed_with(hook.secret)
    page = client.get(PAGE).content.decode()
    assert "A ping is on its way" in page
    assert "DELIVERED" in page and "HTTP 200" in page
    partial = client.get(f"{PAGE}deliveries/")
    assert partial.status_code == 200 and b"HTTP 200" in partial.content
    assert b"hx-trigger" not in partial.content  # nothing pending: no more polling


def test_a_pending_delivery_keeps_the_table_refreshing(user, workspace):
    hook = services.webhook_create(
        workspace=workspace, actor=user, url="https://hooks.example.com/x", events=["training.started"]
    )
    services.webhook_test(webhook=hook, actor=user)  # its job waits for the commit, which never comes here
    partial = signed_in(user).get(f"{PAGE}deliveries/").content.decode()
    assert "PENDING" in partial and "waiting for a worker" in partial and 'hx-trigger="every 2s"' in partial


def test_the_owner_deletes_a_webhook_with_its_deliveries(user, workspace):
    hook = services.webhook_create(
        workspace=workspace, actor=user, url="https://hooks.example.com/x", events=["training.started"]
    )
    services.webhook_test(webhook=hook, actor=user)
    response = signed_in(user).post(f"{PAGE}{hook.pk}/delete/")
    assert response.status_code == 302
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()


def test_a_member_who_is_not_the_owner_is_refused_everywhere(user, other_user, shared_workspace):
    hook = services.webhook_create(
        workspace=shared_workspace,
        actor=other_user,
        url="https://hooks.example.com/x",
        events=["training.failed"],
    )
    client = signed_in(user, shared_workspace)
    assert b"/console/workspace/webhooks/" not in client.get("/console/workspace/members/").content
    for method, url, data in [
        ("get", PAGE, None),
        ("post", PAGE, {"url": "https://hooks.example.com/y", "events": ["training.failed"]}),
        ("get", f"{PAGE}deliveries/", None),
        ("post", f"{PAGE}{hook.pk}/test/", None),
        ("post", f"{PAGE}{hook.pk}/delete/", None),
    ]:
        response = getattr(client, method)(url, data)
        assert response.status_code == 403, (method, url)
        assert services.MSG_ONLY_OWNER.encode() in response.content
    assert list(Webhook.objects.values_list("pk", flat=True)) == [hook.pk]
    assert not WebhookDelivery.objects.exists()


def test_another_workspaces_webhook_is_a_404(user, other_user):
    other = workspace_ensure_default(user=other_user)
    hook = services.webhook_create(
        workspace=other, actor=other_user, url="https://hooks.example.com/x", events=["training.failed"]
    )
    client = signed_in(user)
    for action in ("test", "delete"):
        assert client.post(f"{PAGE}{hook.pk}/{action}/").status_code == 404
    assert hook.url.encode() not in client.get(PAGE).content
    assert Webhook.objects.filter(pk=hook.pk).exists() and not WebhookDelivery.objects.exists()


def test_the_page_costs_the_same_queries_with_more_deliveries(user, workspace, django_assert_max_num_queries):
    hook = services.webhook_create(
        workspace=workspace, actor=user, url="https://hooks.example.com/x", events=["training.failed"]
    )
    client = signed_in(user)
    client.get(PAGE)
    for _ in range(15):
        services.webhook_test(webhook=hook, actor=user)
    with django_assert_max_num_queries(10):
        assert client.get(PAGE).status_code == 200
