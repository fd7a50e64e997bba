"""webhook/ through the API: every route for 401 (no token), 404 (another workspace), 403 (a member
who is not the owner), 400 (bad input, with the message) and its happy path with the exact fields."""

from __future__ import annotations

import pytest

from apps.webhooks import services
from apps.webhooks.models import Webhook, WebhookDelivery
from apps.workspaces import services as workspace_services

BASE = "/recognition/v2/webhook/"
WEBHOOK_FIELDS = {"id", "workspace", "url", "events", "description", "is_active", "created", "updated"}
DELIVERY_FIELDS = {
    "id", "webhook", "event", "status", "attempts", "response_status", "error", "created", "next_attempt",
    "finished", "payload", "attempt_log",
}  # fmt: skip
PAYLOAD_FIELDS = {"id", "event", "created", "workspace", "data"}
PUBLIC_URL = "https://hooks.example.com/visionforge"  # does not resolve here: accepted, never sent
STARTED = ["training.started"]
NOT_A_LIST = 'Expected a list of items but got type "str".'


@pytest.fixture
def hook(workspace, user):
    return services.webhook_create(
        workspace=workspace, actor=user, url=PUBLIC_URL, events=["training.finished"], description="CI"
    )


def routes(hook_id) -> list[tuple[str, str, dict | None]]:
    body = {"url": PUBLIC_URL + "/2", "events": ["training.failed"]}
    return [
        ("get", BASE, None),
        ("post", BASE, body),
        ("get", f"{BASE}{hook_id}/", None),
        ("put", f"{BASE}{hook_id}/", body),
        ("patch", f"{BASE}{hook_id}/", {"description": "changed"}),
        ("delete", f"{BASE}{hook_id}/", None),
        ("post", f"{BASE}{hook_id}/test/", None),
        ("get", f"{BASE}{hook_id}/deliveries/", None),
    ]


def state() -> list:
    return [
        list(Webhook.objects.values().order_by("id")),
        list(WebhookDelivery.objects.values_list("id", flat=True)),
    ]


def test_no_token_is_a_401_on_every_route(anon, hook):
    before = state()
    for method, path, body in routes(hook.pk):
        response = getattr(anon, method)(path, body, format="json")
        assert response.status_code == 401, (method, path)
    assert state() == before


def test_another_workspaces_webhook_is_a_404_on_every_route_and_nothing_changes(other_api, hook, workspace):
    before = state()
    for method, path, body in routes(hook.pk):
        if path == BASE:
            continue  # the collection acts on the caller's own workspace (below)
        response = getattr(other_api, method)(path, body, format="json")
        assert response.status_code == 404, (method, path, response.content)
        # Naming the victim's workspace does not help.
        response = getattr(other_api, method)(f"{path}?workspace={workspace.pk}", body, format="json")
        assert response.status_code == 404, (method, path, response.content)
    assert other_api.get(BASE).json()["results"] == []
    assert other_api.get(f"{BASE}?workspace={workspace.pk}").status_code == 404
    assert state() == before


def test_a_member_who_is_not_the_owner_gets_a_403_on_every_route(api, other_user, shared_workspace):
    hook = services.webhook_create(
        workspace=shared_workspace, actor=other_user, url=PUBLIC_URL, events=["training.started"]
    )
    before = state()
    for method, path, body in routes(hook.pk):
        response = getattr(api, method)(f"{path}?workspace={shared_workspace.pk}", body, format="json")
        assert response.status_code == 403, (method, path, response.content)
        assert response.json() == {"detail": services.MSG_ONLY_OWNER}
    assert state() == before


def test_it_creates_a_webhook_and_shows_its_secret_once(api, workspace):
    response = api.post(
        BASE, {"url": PUBLIC_URL, "events": ["training.failed", "training.started"]}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == WEBHOOK_FIELDS | {"secret"}
    assert body["url"] == PUBLIC_URL and body["workspace"] == str(workspace.pk)
    assert body["events"] == ["training.started", "training.failed"]  # one each, in a stable order
    assert body["is_active"] is True and body["description"] == ""
    assert len(body["secret"]) == 64
    assert Webhook.objects.get(pk=body["id"]).secret == body["secret"]

    for answer in (api.get(f"{BASE}{body['id']}/").json(), api.get(BASE).json()["results"][0]):
        assert set(answer) == WEBHOOK_FIELDS
        assert body["secret"] not in str(answer)


def test_it_lists_gets_replaces_changes_and_deletes_a_webhook(api, workspace, hook):
    listed = api.get(BASE).json()
    assert set(listed) == {"count", "next", "previous", "results"}
    assert listed["count"] == 1 and listed["results"][0]["id"] == str(hook.pk)

    got = api.get(f"{BASE}{hook.pk}/").json()
    assert set(got) == WEBHOOK_FIELDS and got["description"] == "CI"

    response = api.put(
        f"{BASE}{hook.pk}/", {"url": PUBLIC_URL + "/v2", "events": ["suggestions.ready"]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert set(response.json()) == WEBHOOK_FIELDS
    assert response.json()["url"] == PUBLIC_URL + "/v2" and response.json()["events"] == ["suggestions.ready"]

    response = api.patch(f"{BASE}{hook.pk}/", {"is_active": False, "description": "off"}, format="json")
    assert response.status_code == 200
    assert response.json()["is_active"] is False and response.json()["description"] == "off"
    assert response.json()["url"] == PUBLIC_URL + "/v2"
    secret = hook.secret
    hook.refresh_from_db()
    assert hook.secret == secret  # a change keeps the secret

    assert api.delete(f"{BASE}{hook.pk}/").status_code == 204
    assert api.get(f"{BASE}{hook.pk}/").status_code == 404
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"url": "ftp://files.example.com/", "events": STARTED}, {"detail": services.MSG_URL_SCHEME}),
        ({"url": "not a url", "events": STARTED}, {"detail": services.MSG_URL_SCHEME}),
        ({"url": "http://:8080/x", "events": STARTED}, {"detail": services.MSG_URL_INVALID}),
        ({"url": "http://example.com:99999/", "events": STARTED}, {"detail": services.MSG_URL_INVALID}),
        ({"url": PUBLIC_URL, "events": []}, {"events": ["This list may not be empty."]}),
        ({"url": PUBLIC_URL, "events": ["ping"]}, {"events": {"0": ['"ping" is not a valid choice.']}}),
        ({"url": PUBLIC_URL, "events": "training.started"}, {"events": [NOT_A_LIST]}),
        ({"events": STARTED}, {"url": ["This field is required."]}),
    ],
    ids=["scheme", "no-scheme", "no-host", "bad-port", "no-events", "ping", "not-a-list", "no-url"],
)  # fmt: skip
def test_bad_input_is_a_400_with_the_message_and_creates_nothing(api, workspace, body, expected):
    response = api.post(BASE, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json() == expected
    assert not Webhook.objects.exists()


def test_a_change_with_bad_input_is_a_400_and_changes_nothing(api, hook):
    before = state()
    for method, body, expected in [
        ("put", {"url": PUBLIC_URL}, {"events": ["This field is required."]}),
        ("patch", {"url": "gopher://example.com/"}, {"detail": services.MSG_URL_SCHEME}),
        ("patch", {"events": ["nope"]}, {"events": {"0": ['"nope" is not a valid choice.']}}),
        ("patch", {"is_active": "perhaps"}, {"is_active": ["Must be a valid boolean."]}),
    ]:
        response = getattr(api, method)(f"{BASE}{hook.pk}/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert response.json() == expected
    assert state() == before


REFUSED = [
    "http://127.0.0.1:8000/hook",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one number
    "http://0.0.0.0/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.9/hook",
    "https://192.168.1.20/hook",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fd00::1]/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
]


@pytest.mark.parametrize("url", REFUSED)
def test_loopback_and_private_targets_are_refused_when_registered(api, settings, url):
    settings.VF_WEBHOOKS_ALLOWED_HOSTS = []
    response = api.post(BASE, {"url": url, "events": ["training.finished"]}, format="json")
    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    assert detail.startswith("The webhook URL's host resolves to ") and "VF_WEBHOOKS_ALLOWED_HOSTS" in detail
    assert not Webhook.objects.exists()


def test_a_change_to_a_private_target_is_refused_too(api, hook, settings):
    settings.VF_WEBHOOKS_ALLOWED_HOSTS = []
    response = api.patch(f"{BASE}{hook.pk}/", {"url": "http://10.0.0.8/hook"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": services.MSG_URL_REFUSED.format(address="10.0.0.8")}
    hook.refresh_from_db()
    assert hook.url == PUBLIC_URL


def test_an_allowed_host_is_accepted_on_its_exact_name_only(api, settings):
    settings.VF_WEBHOOKS_ALLOWED_HOSTS = ["127.0.0.1"]
    assert (
        api.post(
            BASE,
            {"url": "http://127.0.0.1:9/h", "events": ["training.failed"]},
            format="json",
        ).status_code
        == 201
    )
    response = api.post(BASE, {"url": "http://localhost:9/h", "events": ["training.failed"]}, format="json")
    assert response.status_code == 400  # the same address under another name is not allowed


def test_a_workspace_holds_at_most_twenty_webhooks(api, workspace, user):
    for i in range(services.MAX_WEBHOOKS_PER_WORKSPACE):
        services.webhook_create(
            workspace=workspace,
            actor=user,
            url=f"{PUBLIC_URL}/{i}",
            events=["training.failed"],
        )
    response = api.post(BASE, {"url": PUBLIC_URL, "events": ["training.failed"]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": services.MSG_TOO_MANY}


def test_test_queues_a_ping_and_answers_the_delivery(api, workspace, hook):
    response = api.post(f"{BASE}{hook.pk}/test/")
    assert response.status_code == 202, response.content
    delivery = response.json()
    assert set(delivery) == DELIVERY_FIELDS
    assert delivery["event"] == "ping" and delivery["webhook"] == str(hook.pk)
    assert delivery["status"] == "PENDING" and delivery["attempts"] == 0 and delivery["attempt_log"] == []
    payload = delivery["payload"]
    assert set(payload) == PAYLOAD_FIELDS
    assert payload["id"] == delivery["id"] and payload["event"] == "ping"
    assert payload["workspace"] == str(workspace.pk)
    assert payload["data"] == {
        "webhook": str(hook.pk),
        "events": ["training.finished"],
        "message": "Hello from VisionForge.",
    }


def test_the_delivery_log_is_paged_newest_first_in_constant_queries(api, hook, django_assert_max_num_queries):
    ids = [api.post(f"{BASE}{hook.pk}/test/").json()["id"] for _ in range(3)]
    response = api.get(f"{BASE}{hook.pk}/deliveries/?page_size=2")
    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == 3 and page["next"] and page["previous"] is None
    assert [d["id"] for d in page["results"]] == ids[::-1][:2]
    assert set(page["results"][0]) == DELIVERY_FIELDS
    assert [d["id"] for d in api.get(page["next"]).json()["results"]] == ids[:1]

    api.post(f"{BASE}{hook.pk}/test/")
    with django_assert_max_num_queries(8):
        assert api.get(f"{BASE}{hook.pk}/deliveries/").json()["count"] == 4


def test_the_short_prefix_answers_too(api, hook):
    assert api.get(f"/v2/webhook/{hook.pk}").json()["id"] == str(hook.pk)


def test_the_owner_of_a_shared_workspace_manages_its_webhooks(other_api, other_user, shared_workspace):
    response = other_api.post(
        f"{BASE}?workspace={shared_workspace.pk}",
        {"url": PUBLIC_URL, "events": ["training.failed"]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["workspace"] == str(shared_workspace.pk)
    assert workspace_services.workspace_ensure_default(user=other_user).webhooks.count() == 0
