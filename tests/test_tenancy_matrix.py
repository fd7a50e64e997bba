"""Tenancy, proven for every route.

Walks every API endpoint Django serves (drf-spectacular's enumerator over the whole URLconf, the
``/v2/`` aliases included), so a route added later is covered without touching this file, or fails
here until it is classified. For each route and method:

- no token: 401;
- a user of another workspace, with the victim's object ids: 404, with and without naming the
  victim's workspace;
- the owner and a member, naming the workspace with ``workspace=``: allowed (never 401/403/404,
  except the owner-only member management, a 403 for the member);
- a scoped token (apps/tokens) of each scope: in its own workspace allowed or a 403 naming the
  scope, as the scope's table below says; the attacker's: naming the victim's workspace a 404, the
  victim's ids a 404 (a route outside the scope is the scope's 403, before any lookup); an expired
  or revoked token: 401 on every route;

and after the attacker's calls every row and stored file of the victim workspace is unchanged.
The web console's routes (apps/console/urls.py) are walked the same way at the end of this file.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from PIL import Image
from rest_framework.schemas.generators import EndpointEnumerator

from apps.console import urls as console_urls
from apps.detection.models import DetectionLabel, DetectionObject, NegativeImage, ObjectLabel
from apps.images.models import ImageLabel, TrainingImage
from apps.images.services import training_image_ingest
from apps.labels.models import Label
from apps.similarity.models import Descriptor, DescriptorRun
from apps.suggestions.models import PoolImage, SuggestionRun
from apps.tasks.models import Task
from apps.tokens.models import ScopedToken
from apps.tokens.scopes import scope_refusal
from apps.tokens.services import scoped_token_create
from apps.training.models import ModelVersion
from apps.webhooks.models import Webhook, WebhookDelivery
from apps.workspaces import services as workspace_services
from apps.workspaces.models import Membership, Workspace
from tests.factories import UserFactory

# Routes that answer without a token, each for a reason.
PUBLIC = {
    ("POST", "/account/v2/token/"): "exchanges a password for a token",
    ("GET", "/health/"): "liveness for load balancers",
    ("GET", "/api/docs/"): "Swagger UI",
    ("GET", "/api/schema/"): "OpenAPI schema",
    ("GET", "/media/{name}"): "signed, expiring links; tests/images/test_signed_urls.py proves them",
}
# Routes about the caller's own account: not scoped by a workspace, nothing of the victim's in them.
# The workspace list shows only the caller's own workspaces (tests/workspaces/test_api.py), and POST
# creates one owned by the caller.
ACCOUNT = {
    ("GET", "/account/v2/user/"),
    ("GET", "/account/v2/details/"),
    ("GET", "/account/v2/workspace/"),
    ("POST", "/account/v2/workspace/"),
}
# Owner-only operations: a member gets 403 (a member already knows the workspace exists).
OWNER_ONLY = re.compile(
    r"^(POST|DELETE) /account/v2/workspace/\{pk\}/members/|^DELETE /account/v2/workspace/\{pk\}/$"
    r"|^GET /account/v2/workspace/\{pk\}/audit-log/"
    # Webhooks, every route: their URLs and delivery log are the owner's (apps/webhooks/services.py).
    r"|^\w+ /(recognition/)?v2/webhook/"
    # Scoped API tokens: the owner issues and revokes them (apps/tokens/services.py).
    r"|^\w+ /account/v2/workspace/\{pk\}/tokens/"
)
# The object kind behind {pk} of each collection.
OBJECT_KIND = {
    "workspace": "workspace",
    "task": "task",
    "label": "label",
    "training-image": "image",
    "model": "model",
    "object": "detection_object",
    "webhook": "webhook",
}
# Under /detection/v2/ the same collection names are the detection ones.
DETECTION_KIND = {"task": "detection_task", "label": "detection_label", "object": "detection_object"}


def _endpoints():
    seen = []
    # DRF's enumerator walks the whole URLconf, aliases included (drf-spectacular's drops them).
    for path, method, _callback in EndpointEnumerator().get_api_endpoints():
        seen.append((method, path))
    return sorted(set(seen))


ENDPOINTS = _endpoints()
SCOPED = [(m, p) for m, p in ENDPOINTS if (m, p) not in PUBLIC and (m, p) not in ACCOUNT]


def _png(colour=(10, 200, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(buffer, "PNG")
    return buffer.getvalue()


class World:
    """A victim workspace with one of everything, its owner and a member, and an attacker."""

    def __init__(self):
        self.owner = UserFactory()
        self.member = UserFactory()
        self.attacker = UserFactory()
        self.attacker_workspace = workspace_services.workspace_ensure_default(user=self.attacker)
        self.workspace = workspace_services.workspace_create(owner=self.owner, name="Victim team")
        workspace_services.membership_add(
            workspace=self.workspace, actor=self.owner, username_or_email=self.member.username
        )
        self.task = Task.objects.create(workspace=self.workspace, owner=self.owner, name="victim task")
        self.label = Label.objects.create(workspace=self.workspace, name="victim label")
        other = Label.objects.create(workspace=self.workspace, name="victim other")
        self.task.labels.add(self.label, other)
        self.image = training_image_ingest(workspace=self.workspace, data=_png(), label_ids=[self.label.id])
        self.model = ModelVersion.objects.create(
            workspace=self.workspace, task=self.task, version=1, train_status=ModelVersion.Status.FAILED
        )
        self.detection_task = Task.objects.create(
            workspace=self.workspace, owner=self.owner, name="victim detector", type=Task.Type.DETECTION
        )
        self.detection_label = DetectionLabel.objects.create(workspace=self.workspace, name="victim car")
        self.detection_label.tasks.add(self.detection_task)
        self.detection_object = DetectionObject.objects.create(
            workspace=self.workspace,
            detection_label=self.detection_label,
            image=self.image,
            data=[1, 1, 20, 20],
        )
        self.scoped_token, _key = scoped_token_create(
            workspace=self.workspace, actor=self.owner, name="victim token", scope="full"
        )
        self.webhook = Webhook.objects.create(
            workspace=self.workspace,
            url="https://hooks.example.com/victim",  # never sent: no job runs in these tests
            events=["training.finished"],
            secret="victim-secret",
        )

    def ids(self) -> dict:
        return {
            "workspace": str(self.workspace.id),
            "task": str(self.task.id),
            "label": str(self.label.id),
            "image": str(self.image.id),
            "model": str(self.model.id),
            "detection_task": str(self.detection_task.id),
            "detection_label": str(self.detection_label.id),
            "detection_object": str(self.detection_object.id),
            "webhook": str(self.webhook.id),
            "scoped_token": str(self.scoped_token.id),
        }

    def url(self, path: str) -> str:
        ids = self.ids()
        collection = path.strip("/").split("/")
        kind = None
        kinds = DETECTION_KIND if path.startswith("/detection/") else OBJECT_KIND
        for part in collection:
            if part in kinds:
                kind = kinds[part]
                break
        if "{pk}" in path:
            assert kind, f"{path}: add its collection to OBJECT_KIND in this test"
            path = path.replace("{pk}", ids[kind])
        path = path.replace("{token_id}", ids["scoped_token"])
        return path.replace("{user_id}", str(self.owner.id))

    def body(self, workspace: str | None, path: str = "") -> dict:
        body = {
            "name": "changed",
            "type": "multi_class",
            "description": "changed",
            "label_id": str(self.label.id),
            "task_id": str(self.task.id),
            "task": str(self.task.id),
            "records": [{"_base64": base64.b64encode(_png((1, 2, 3))).decode()}],
            "images": [str(self.image.id)],
            "labels": [str(self.label.id)],
            "labels-add": [str(self.label.id)],
            "labels-remove": [str(self.label.id)],
            "mark-test": True,
            "production_version": 1,
            "meta_data": {"changed": True},
            "base64": base64.b64encode(_png((9, 9, 9))).decode(),
            "username": self.attacker.username,
            "scope": "read-only",
            "value": 1.0,
            # detection/v2/: objects, negative images.
            "detection_label": str(self.detection_label.id),
            "image": str(self.image.id),
            "image_id": str(self.image.id),
            "data": [2, 2, 30, 30],
        }
        if path.startswith("/detection/v2/task/"):
            body["label_id"] = str(self.detection_label.id)  # a detection task takes detection labels
        if path.startswith(("/detection/v2/detect", "/v2/detect")):
            body["task_id"] = body["task"] = str(self.detection_task.id)
        if workspace:
            body["workspace"] = workspace
        return body

    def snapshot(self) -> dict:
        ws = self.workspace
        rows = {
            "workspace": list(Workspace.objects.filter(pk=ws.pk).values()),
            "memberships": list(Membership.objects.filter(workspace=ws).values("user_id", "role")),
            "tasks": list(Task.objects.filter(workspace=ws).values().order_by("id")),
            "task_labels": sorted(
                Task.labels.through.objects.filter(task__workspace=ws).values_list("task_id", "label_id")
            ),
            "labels": list(Label.objects.filter(workspace=ws).values().order_by("id")),
            "images": list(TrainingImage.objects.filter(workspace=ws).values().order_by("id")),
            "image_labels": sorted(
                ImageLabel.objects.filter(image__workspace=ws).values_list("image_id", "label_id", "value")
            ),
            "models": list(ModelVersion.objects.filter(workspace=ws).values().order_by("id")),
            "detection_labels": list(DetectionLabel.objects.filter(workspace=ws).values().order_by("id")),
            "detection_task_labels": sorted(
                DetectionLabel.tasks.through.objects.filter(task__workspace=ws).values_list(
                    "task_id", "detectionlabel_id"
                )
            ),
            "detection_label_links": sorted(
                DetectionLabel.recognition_tasks.through.objects.filter(task__workspace=ws).values_list(
                    "task_id", "detectionlabel_id"
                )
            ),
            "detection_objects": list(DetectionObject.objects.filter(workspace=ws).values().order_by("id")),
            "object_labels": sorted(
                ObjectLabel.objects.filter(object__workspace=ws).values_list("object_id", "label_id", "value")
            ),
            "negative_images": sorted(
                NegativeImage.objects.filter(task__workspace=ws).values_list("task_id", "image_id")
            ),
            "pool_images": sorted(
                PoolImage.objects.filter(task__workspace=ws).values_list("task_id", "image_id")
            ),
            "suggestion_runs": list(SuggestionRun.objects.filter(workspace=ws).values().order_by("id")),
            "descriptor_runs": list(DescriptorRun.objects.filter(workspace=ws).values().order_by("id")),
            "descriptors": sorted(
                Descriptor.objects.filter(image__workspace=ws).values_list("version_id", "image_id")
            ),
            "webhooks": list(Webhook.objects.filter(workspace=ws).values().order_by("id")),
            "scoped_tokens": list(
                ScopedToken.objects.filter(workspace=ws).values("id", "name", "scope", "key_hash", "expires")
            ),
            "webhook_deliveries": sorted(
                WebhookDelivery.objects.filter(webhook__workspace=ws).values_list("id", flat=True)
            ),
        }
        media = Path(django_settings.MEDIA_ROOT)
        rows["files"] = (
            sorted((str(p.relative_to(media)), p.stat().st_size) for p in media.rglob("*") if p.is_file())
            if media.exists()
            else []
        )
        return rows


def _call(client, method: str, url: str, workspace: str | None, body: dict):
    query = f"?workspace={workspace}" if workspace else ""
    if method in ("GET", "DELETE"):
        return getattr(client, method.lower())(url + query)
    return getattr(client, method.lower())(url + query, body, format="json")


def test_every_route_is_classified():
    assert ENDPOINTS, "no endpoints found"
    for method, path in ENDPOINTS:
        if (method, path) in PUBLIC or (method, path) in ACCOUNT:
            continue
        if "{pk}" in path:
            assert any(part in OBJECT_KIND for part in path.strip("/").split("/")), path
    # The aliases are walked too.
    assert any(path.startswith("/v2/") for _, path in ENDPOINTS)


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), SCOPED + sorted(ACCOUNT), ids=lambda v: v)
def test_no_token_is_a_401(anon, method, path):
    world = World()
    response = _call(anon, method, world.url(path), None, world.body(None, path))
    assert response.status_code == 401, response.content


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), SCOPED, ids=lambda v: v)
def test_another_workspace_is_a_404_and_nothing_changes(client_for, method, path):
    world = World()
    before = world.snapshot()
    attacker = client_for(world.attacker)
    url = world.url(path)
    victim = str(world.workspace.id)

    # Naming the victim's workspace: always a 404.
    response = _call(attacker, method, url, victim, world.body(victim, path))
    assert response.status_code == 404, (method, url, response.status_code, response.content)

    # In the attacker's own workspace with the victim's ids: a 404 for the victim's objects;
    # a collection route acts on the attacker's own workspace and must not reach the victim's.
    response = _call(attacker, method, url, None, world.body(None, path))
    assert response.status_code < 500, response.content
    if "{pk}" in path or path.endswith(("/classify/", "/train/", "/detect/")):
        assert response.status_code == 404, (method, url, response.status_code, response.content)
    assert world.snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["owner", "member"])
@pytest.mark.parametrize(("method", "path"), SCOPED, ids=lambda v: v)
def test_the_owner_and_members_are_allowed_through_the_workspace_parameter(client_for, method, path, who):
    world = World()
    client = client_for(getattr(world, who))
    victim = str(world.workspace.id)
    response = _call(client, method, world.url(path), victim, world.body(victim, path))
    assert response.status_code < 500, response.content
    if who == "member" and OWNER_ONLY.search(f"{method} {path}"):
        assert response.status_code == 403, response.content
    else:
        assert response.status_code not in (401, 403, 404), (
            method,
            path,
            response.status_code,
            response.content,
        )


# --------------------------------------------------------------------------- scoped tokens
# What each scope may do, stated here from the issue (not read from apps/tokens): read-only reads
# the workspace (not its webhooks, the owner's), classify-only calls the predict endpoints, full
# does everything in the workspace; no scoped token uses an account route (workspaces, members,
# tokens, the audit log, the user).
SCOPES = ["read-only", "classify-only", "full"]
PREDICT = re.compile(r"^/(recognition/v2|v2|detection/v2|v1)/(classify|detect)/$")
WEBHOOKS = re.compile(r"^/(recognition/)?v2/webhook/")


def _account_route(path: str) -> bool:
    return path.startswith("/account/")


def _scope_allows(scope: str, method: str, path: str) -> bool:
    if _account_route(path):
        return False
    if PREDICT.match(path):
        return method == "POST" and scope in ("classify-only", "full")
    if WEBHOOKS.match(path):
        return scope == "full"
    return scope == "full" or (scope == "read-only" and method in ("GET", "HEAD", "OPTIONS"))


def _token_client(key: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _refused_by_scope(response, scope: str, path: str) -> None:
    assert response.status_code == 403, (path, response.status_code, response.content)
    access = (
        None
        if _account_route(path)
        else "predict"
        if PREDICT.match(path)
        else "owner"
        if WEBHOOKS.match(path)
        else "data"
    )
    assert response.json() == {"detail": scope_refusal(scope=scope, access=access)}


@pytest.mark.django_db
@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize(("method", "path"), SCOPED + sorted(ACCOUNT), ids=lambda v: v)
def test_a_scoped_token_acts_in_its_own_workspace_only_and_as_its_scope_allows(method, path, scope):
    world = World()
    url = world.url(path)
    victim = str(world.workspace.id)
    allowed = _scope_allows(scope, method, path)

    # The attacker's token of the same scope, bound to the attacker's workspace: the victim's
    # workspace is a 404 whatever the scope; the victim's ids in its own workspace a 404 where
    # the scope allows the route, else the scope's 403.
    before = world.snapshot()
    _token, key = scoped_token_create(
        workspace=world.attacker_workspace, actor=world.attacker, name="attacker", scope=scope
    )
    attacker = _token_client(key)
    response = _call(attacker, method, url, victim, world.body(victim, path))
    assert response.status_code == 404, (method, url, response.status_code, response.content)
    response = _call(attacker, method, url, None, world.body(None, path))
    assert response.status_code < 500, response.content
    if not allowed:  # refused before any lookup: says nothing of the victim's object
        _refused_by_scope(response, scope, path)
    elif "{pk}" in path or path.endswith(("/classify/", "/train/", "/detect/")):
        assert response.status_code == 404, (method, url, response.status_code, response.content)
    assert world.snapshot() == before

    # The victim owner's token of this scope, in the victim's workspace: allowed or a 403.
    _token, key = scoped_token_create(workspace=world.workspace, actor=world.owner, name="own", scope=scope)
    response = _call(_token_client(key), method, url, victim, world.body(victim, path))
    assert response.status_code < 500, response.content
    if allowed:
        assert response.status_code not in (401, 403, 404), (
            method,
            path,
            response.status_code,
            response.content,
        )
    else:
        _refused_by_scope(response, scope, path)


@pytest.mark.django_db
def test_an_expired_or_revoked_scoped_token_is_a_401_on_every_route():
    from datetime import timedelta

    from django.utils import timezone

    world = World()
    expired, expired_key = scoped_token_create(
        workspace=world.workspace, actor=world.owner, name="expired", scope="full"
    )
    ScopedToken.objects.filter(pk=expired.pk).update(expires=timezone.now() - timedelta(seconds=1))
    revoked, revoked_key = scoped_token_create(
        workspace=world.workspace, actor=world.owner, name="revoked", scope="full"
    )
    revoked.delete()
    before = world.snapshot()
    victim = str(world.workspace.id)
    for method, path in SCOPED + sorted(ACCOUNT):
        for key in (expired_key, revoked_key):
            response = _call(_token_client(key), method, world.url(path), victim, world.body(victim, path))
            assert response.status_code == 401, (method, path, response.status_code, response.content)
    assert world.snapshot() == before


# --------------------------------------------------------------------------- the web console
# Its pages are Django views, not API endpoints, so the enumerator above does not see them; every
# route of apps/console/urls.py is walked here with the same World: a signed-in user of another
# workspace gets a 404 for the victim's task, image, box or version, and nothing changes.

CONSOLE_PUBLIC = {
    "login": "the sign-in page",
    "logout": "ends the caller's own session",
}
# The signed-in user's own account and current workspace: no id of anybody else's object in them
# (the switcher checks membership: tests/console/test_account.py).
CONSOLE_ACCOUNT = {
    "home",
    "password-change",
    "password-change-done",
    "workspace-switch",
    "members",
    "member-remove",
    "audit-log",
    "task-list",
    "webhooks",
    "webhook-deliveries",
    "token-create",  # issues a token in the caller's own current workspace
}
CONSOLE_ROUTES = sorted((pattern.name, pattern) for pattern in console_urls.urlpatterns)
CONSOLE_SCOPED = [
    name for name, _ in CONSOLE_ROUTES if name not in CONSOLE_PUBLIC and name not in CONSOLE_ACCOUNT
]
# GET answers 405 on these (they change something): the attacker's POST is what matters there.
CONSOLE_POST_ONLY = {
    "workspace-switch",
    "member-remove",
    "label-create",
    "task-deploy",
    "task-final-refit",
    "task-train",
    "task-try",
    "image-upload",
    "image-bulk",
    "box-create",
    "box-update",
    "box-delete",
    "label-next-accept",
    "label-next-refresh",
    "similar-refresh",
    "webhook-test",
    "webhook-delete",
    "token-create",
    "token-revoke",
}


def _console_url(world: World, name: str) -> str:
    pattern = dict(CONSOLE_ROUTES)[name]
    task = world.detection_task if name.startswith("box-") else world.task
    values = {
        "task_id": task.id,
        "image_id": world.image.id,
        "object_id": world.detection_object.id,
        "version": world.model.version,
        "user_id": world.owner.id,
        "webhook_id": world.webhook.id,
        "token_id": world.scoped_token.id,
    }
    kwargs = {key: values[key] for key in pattern.pattern.converters}
    return reverse(f"console:{name}", kwargs=kwargs)


def _console_body(world: World) -> dict:
    return {
        "name": "changed",
        "type": "multi_class",
        "version": world.model.version,
        "label": str(world.label.id),
        "images": [str(world.image.id)],
        "action": "delete",
        "x1": 1,
        "y1": 1,
        "x2": 5,
        "y2": 5,
        "username_or_email": world.attacker.username,
        "workspace": str(world.workspace.id),
    }


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_every_console_route_is_classified():
    assert CONSOLE_ROUTES, "no console routes found"
    for name, pattern in CONSOLE_ROUTES:
        if name in CONSOLE_PUBLIC or name in CONSOLE_ACCOUNT:
            assert not set(pattern.pattern.converters) - {"user_id"}, name
        else:
            converters = set(pattern.pattern.converters)
            assert converters <= {"task_id", "image_id", "object_id", "version", "webhook_id", "token_id"}, (
                name
            )
            # A task's page, or a workspace-level object of the current workspace (a webhook, a token).
            assert "task_id" in converters or converters in ({"webhook_id"}, {"token_id"}), name


@pytest.mark.django_db
@pytest.mark.parametrize("name", [n for n, _ in CONSOLE_ROUTES if n not in CONSOLE_PUBLIC])
def test_a_console_page_without_a_session_sends_to_the_sign_in_page(name):
    world = World()
    url = _console_url(world, name)
    response = Client().post(url, _console_body(world))
    assert response.status_code == 302, (url, response.status_code)
    assert response["Location"].startswith("/console/login/"), url


@pytest.mark.django_db
@pytest.mark.parametrize("name", CONSOLE_SCOPED)
def test_another_workspaces_object_is_a_404_in_the_console_and_nothing_changes(name):
    world = World()
    before = world.snapshot()
    attacker = _signed_in(world.attacker)
    url = _console_url(world, name)
    # The attacker's session even names the victim's workspace: the switcher refuses it (404).
    assert (
        attacker.post(reverse("console:workspace-switch"), {"workspace": str(world.workspace.id)}).status_code
        == 404
    )
    if name not in CONSOLE_POST_ONLY:
        assert attacker.get(url).status_code == 404, url
    response = attacker.post(url, _console_body(world))
    assert response.status_code == 404, (url, response.status_code)
    assert world.snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["owner", "member"])
@pytest.mark.parametrize("name", [n for n in CONSOLE_SCOPED if n not in CONSOLE_POST_ONLY])
def test_the_owner_and_members_see_the_console_pages_of_the_workspace(name, who):
    world = World()
    client = _signed_in(getattr(world, who))
    client.post(reverse("console:workspace-switch"), {"workspace": str(world.workspace.id)})
    url = _console_url(world, name)
    response = client.get(url)
    # 400: the download of the World's FAILED version is refused for that reason, not tenancy;
    # 409: the box editor's proposals ask a model the World's detection task does not have.
    assert response.status_code in (200, 400, 409), (url, response.status_code)
