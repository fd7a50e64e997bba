"""A storage backend that fails during an upload: a clear, retryable error and nothing half-stored."""

from __future__ import annotations

import base64
import errno
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage

from apps.images.errors import MSG_STORAGE_UNAVAILABLE
from apps.images.models import TrainingImage
from tests.pictures import picture

pytestmark = pytest.mark.django_db


def _files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.parametrize("failing_call", [1, 2], ids=["image write fails", "thumbnail write fails"])
def test_a_storage_write_failure_is_a_503_with_no_row_and_no_file(api, settings, monkeypatch, failing_call):
    real_save = FileSystemStorage._save
    calls = {"n": 0}

    def flaky_save(self, name, content):
        calls["n"] += 1
        if calls["n"] == failing_call:
            raise OSError(errno.EIO, "Input/output error")  # a failing disk or volume (full is a 507)
        return real_save(self, name, content)

    monkeypatch.setattr(FileSystemStorage, "_save", flaky_save)
    body = {"base64": base64.b64encode(picture()).decode()}
    response = api.post("/recognition/v2/training-image/", body, format="json")
    assert response.status_code == 503
    assert response.json() == {"detail": MSG_STORAGE_UNAVAILABLE}
    assert TrainingImage.objects.count() == 0
    assert _files(settings) == []

    # Once storage works again, the same upload goes through.
    monkeypatch.setattr(FileSystemStorage, "_save", real_save)
    assert api.post("/recognition/v2/training-image/", body, format="json").status_code == 201
