"""Fixtures shared by every test: users, their default workspaces and authenticated clients.

Services (PostgreSQL, Redis, a worker process) are the real ones. A test that needs one uses the
``require_service`` helper: it skips on a laptop without the service and fails when CI=true.
"""

from __future__ import annotations

import os
import socket

import pytest
from rest_framework.test import APIClient

from apps.workspaces import services
from tests.factories import FAST_TRAINING, UserFactory

pytest_plugins = ["tests.servers"]

IN_CI = os.environ.get("CI", "").lower() == "true"

# The second pass of scripts/test.sh (CI=true) runs the suite again against PostgreSQL, Redis and a
# real worker. Tests that cannot see which database or broker is configured run in the first pass
# only, instead of doing the same work twice:
# - tests of ``ml/`` (which never imports Django: lint-imports checks it);
# - checks of the code's and the docs' text (lint, bandit, import rules, links);
# - tests that pin a backend of their own whatever the pass sets: tests/test_memory.py serves from
#   a SQLite file with the filesystem broker and eager jobs (tests/memory_probe.py).
# A test that reads DATABASE_URL, CELERY_BROKER_URL or VF_CACHE_URL (directly or through Django's
# settings) stays in both passes.
SERVICES_PASS = os.environ.get("VF_TEST_PASS", "") == "services"
BACKEND_INDEPENDENT = (
    "tests/ml/",
    "tests/test_static_checks.py",
    "tests/test_architecture.py",
    "tests/test_docs.py",
    "tests/test_memory.py",
)


def pytest_collection_modifyitems(config, items):
    if not SERVICES_PASS:
        return
    kept, left_out = [], []
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        (left_out if path.startswith(BACKEND_INDEPENDENT) else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def service_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(available: bool, what: str) -> None:
    """Skip without the service on a laptop; in CI a missing service is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} is not available")


@pytest.fixture(autouse=True)
def _eager_celery_and_tmp_media(settings, tmp_path):
    """Jobs run inline unless a test starts a real worker; media goes to a per-test folder."""
    from config.celery import app

    settings.MEDIA_ROOT = tmp_path / "media"
    # Password hashing is deliberately slow; tests do not need it to be.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def workspace(user):
    return services.workspace_ensure_default(user=user)


@pytest.fixture
def shared_workspace(user, other_user):
    """A workspace owned by another user, of which the caller is a member."""
    team = services.workspace_create(owner=other_user, name="Team")
    services.membership_add(workspace=team, actor=other_user, username_or_email=user.username)
    return team


@pytest.fixture
def token(user):
    return services.token_get_or_create(user=user)


def _client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {services.token_get_or_create(user=user)}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    return _client_for(user)


@pytest.fixture
def other_api(other_user) -> APIClient:
    return _client_for(other_user)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for():
    return _client_for


@pytest.fixture
def fast_training(settings, tmp_path):
    """Settings for a test training that takes seconds (tests.factories.FAST_TRAINING) and a model
    cache folder of the test's own, which the fixture yields."""
    for key, value in FAST_TRAINING.items():
        setattr(settings, key, value)
    settings.VF_MODEL_CACHE_DIR = tmp_path / "model-cache"
    import torch

    threads = torch.get_num_threads()
    yield settings.VF_MODEL_CACHE_DIR
    torch.set_num_threads(threads)  # a training sets it process-wide; later tests get theirs back


@pytest.fixture
def spooled(settings, tmp_path, monkeypatch) -> list[int]:
    """The sizes of the chunks Django's temporary-file upload handler receives, every file part
    going to a temporary file under ``tmp_path``: what an upload limit must keep small."""
    from django.core.files import uploadhandler

    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000  # every part goes to a temporary file
    chunks: list[int] = []
    original = uploadhandler.TemporaryFileUploadHandler.receive_data_chunk

    def counting(handler, raw_data, start):
        chunks.append(len(raw_data))
        return original(handler, raw_data, start)

    monkeypatch.setattr(uploadhandler.TemporaryFileUploadHandler, "receive_data_chunk", counting)
    return chunks
