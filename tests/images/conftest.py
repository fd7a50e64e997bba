from __future__ import annotations

import base64

import pytest

from apps.labels.models import Label
from apps.tasks.models import Task
from tests.factories import TrainingImageFactory


@pytest.fixture
def make_label(workspace):
    def make(name="cat", type=Label.Type.CATEGORY, workspace=workspace):
        return Label.objects.create(workspace=workspace, name=name, type=type)

    return make


@pytest.fixture
def make_image(workspace):
    def make(workspace=workspace, labels=(), **kwargs):
        return TrainingImageFactory(workspace=workspace, label_ids=labels, **kwargs)

    return make


@pytest.fixture
def task(workspace):
    return Task.objects.create(workspace=workspace, name="pets")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def media_files(settings) -> list:
    root = settings.MEDIA_ROOT
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
