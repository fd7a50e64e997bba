"""A tiny multi_class model (red, green, blue), trained once per session with ml's recipe, and tasks
that deploy it: the suggestions and pre-labels run the real model on real stored images."""

from __future__ import annotations

import uuid
from functools import partial

import numpy as np
import pytest

from apps.inference import cache as model_cache
from apps.labels.models import Label
from apps.tasks.models import Task
from apps.training import artifacts
from apps.training.models import ModelVersion
from ml.config import TrainConfig
from ml.recognition.recipe import fit
from tests import pictures

RED, GREEN, BLUE = (215, 35, 35), (35, 190, 50), (40, 50, 215)
COLOURS = {"red": RED, "green": GREEN, "blue": BLUE}
LABELS = [{"id": str(uuid.uuid4()), "name": name} for name in COLOURS]
solid = partial(pictures.solid, noise=18)


@pytest.fixture(scope="session")
def colour_model(tmp_path_factory) -> str:
    """The artifacts folder of a multi_class model that tells red, green and blue apart."""
    root = tmp_path_factory.mktemp("suggestion-model")
    rng = np.random.default_rng(3)
    items = [(solid(list(COLOURS.values())[i % 3], rng), i % 3) for i in range(36)]
    config = TrainConfig(architecture="resnet10t", pretrained="none", input_size=32, epochs=8, seed=0)
    fit(items, [i % 5 == 0 for i in range(len(items))], LABELS, "multi_class", config=config, out_dir=root)
    return str(root)


@pytest.fixture(autouse=True)
def _model_dirs(settings, tmp_path):
    settings.VF_MODEL_CACHE_DIR = tmp_path / "model-cache"
    settings.VF_INFERENCE_MODE = "eager"
    yield
    model_cache.model_cache().clear()


def deploy(task: Task, directory: str, number: int = 1) -> ModelVersion:
    version = ModelVersion.objects.create(
        workspace=task.workspace, task=task, version=number, train_status=ModelVersion.Status.TRAINED
    )
    version.artifact_path = artifacts.save_artifacts(version, directory)
    version.save(update_fields=["artifact_path"])
    Task.objects.filter(pk=task.pk).update(production_version=number, last_train_status="TRAINED")
    task.refresh_from_db()
    return version


@pytest.fixture
def colour_task(colour_model, workspace, user):
    """A multi_class task whose labels are the model's, with version 1 deployed."""

    def make(workspace=workspace, owner=user, trained: bool = True) -> Task:
        task = Task.objects.create(workspace=workspace, owner=owner, name="colours", type="multi_class")
        for label in LABELS:
            obj, _ = Label.objects.get_or_create(
                id=label["id"], defaults={"workspace": workspace, "name": label["name"]}
            )
            task.labels.add(obj)
        if trained:
            deploy(task, colour_model)
        return task

    return make


def label_id(name: str) -> str:
    return next(label["id"] for label in LABELS if label["name"] == name)
