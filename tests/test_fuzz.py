"""Schemathesis against the service's own OpenAPI schema, through the WSGI app.

Every operation of ``/api/schema/`` is called with generated bodies, parameters and ids (valid and
invalid), authenticated with a real token of a user created for the run. Each answer must be no 5xx,
a status code the schema declares for the operation, and a body that matches the declared schema.
The seed is fixed (``derandomize``), so a failure reproduces; the example count keeps the whole file
within a couple of minutes on two busy cores (CI runs the suite twice).

Random ids mostly answer 404, and that is the point for ``POST task/{id}/train/``: nothing trains.
Some ids are the user's real objects (a task, a label, an image), so the happy paths run too.
URL fetching is replaced by a refusal: a generated ``url`` must never reach the network.
"""

from __future__ import annotations

import io
import json
import os
import re

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.core.throttling import AnonRateThrottle, UserRateThrottle
from apps.images.errors import MSG_URL_UNREACHABLE, UrlFetchError
from apps.images.services import training_image_ingest
from apps.labels.services import label_create
from apps.tasks.services import label_attach, task_create
from apps.training.models import ModelVersion
from apps.workspaces import services as workspace_services
from config.wsgi import application
from tests.factories import UserFactory

# Examples per operation. ~45 operations x this many calls; raise locally to dig deeper
# (VF_FUZZ_EXAMPLES), keep CI's value small enough for the suite's time budget.
MAX_EXAMPLES = int(os.environ.get("VF_FUZZ_EXAMPLES", "10"))

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _refuse_url(url: str) -> bytes:
    raise UrlFetchError(MSG_URL_UNREACHABLE)


# The fuzz user's real objects, by the collection in the path; filled by the fixture before the
# examples are generated, read by the path-parameter hook below.
REAL_IDS: dict[str, str] = {}
KINDS = {
    "workspace": "workspace",
    "task": "task",
    "label": "label",
    "training-image": "image",
    "model": "model",
}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def _create_real_objects(user) -> None:
    workspace = workspace_services.workspace_ensure_default(user=user)
    task = task_create(workspace=workspace, owner=user, name="fuzz task")
    label = label_create(workspace=workspace, name="fuzz label")
    label_attach(label=label, task=task)
    image = training_image_ingest(workspace=workspace, data=_png(), label_ids=[label.pk])
    model = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status=ModelVersion.Status.FAILED
    )
    REAL_IDS.clear()
    REAL_IDS.update(
        workspace=str(workspace.pk),
        task=str(task.pk),
        label=str(label.pk),
        image=str(image.pk),
        model=str(model.pk),
    )


@pytest.fixture
def fuzz_user(db, monkeypatch):
    monkeypatch.setattr("apps.images.services.fetch_url", _refuse_url)
    monkeypatch.setattr("apps.inference.services.fetch_url", _refuse_url)
    # The fuzzer is one client making thousands of calls: throttling is tested elsewhere
    # (tests/workspaces/test_throttling.py) and would only turn examples into 429s here.
    monkeypatch.setattr(UserRateThrottle, "allow_request", lambda self, request, view: True)
    monkeypatch.setattr(AnonRateThrottle, "allow_request", lambda self, request, view: True)
    cache.clear()
    user = UserFactory()
    _create_real_objects(user)
    # The calls go through the real WSGI handler, whose request signals close "old" database
    # connections; inside the test's transaction (autocommit off) that would close the test's own
    # PostgreSQL connection. Django's test client disconnects the same handler for that reason.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield user
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _load_schema():
    # The schema as /api/schema/ serves it, built at collection without a request or a database
    # (schemathesis' pytest fixture loader does not work with pytest 9).
    generated = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(json.loads(OpenApiJsonRenderer().render(generated)))
    loaded.app = application
    return loaded


schema = _load_schema()


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the ids are the fuzz user's real objects, so the happy paths run too."""
    path = context.operation.path if context.operation else ""
    match = re.search(r"/([a-z-]+)/\{id\}", path)
    kind = KINDS.get(match.group(1)) if match else None
    if kind is None or "id" not in path_parameters:
        return st.just(path_parameters)
    # The real id first: with a fixed seed Hypothesis leans to the first choice.
    return st.sampled_from([{**path_parameters, "id": REAL_IDS[kind]}, path_parameters])


@schema.hook
def flatmap_query(context, query):
    """Most calls name the fuzz user's own workspace; the others whatever was generated."""
    if not query or "workspace" not in query:
        return st.just(query)
    return st.sampled_from([{**query, "workspace": REAL_IDS["workspace"]}, query])


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_schema_and_never_5xx(case, fuzz_user):
    token = workspace_services.token_get_or_create(user=fuzz_user)
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)


def test_every_authenticated_operation_declares_its_errors_with_a_body():
    for path, operations in schema.raw_schema["paths"].items():
        for method, operation in operations.items():
            if {} in operation.get("security", [{}]):
                continue  # public: token, health
            responses = operation["responses"]
            assert "401" in responses, (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413"} <= set(responses), (method, path)
            for code, response in responses.items():
                if code.startswith("4"):
                    assert "application/json" in response["content"], (method, path, code)


def test_a_path_no_route_matches_is_a_json_404(api):
    for path in ("/recognition/v2/no-such-thing/", "/recognition/v2/task/not-an-id/", "/nothing"):
        response = api.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert response.json() == {"detail": "Not found."}
