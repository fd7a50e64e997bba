"""factory_boy factories, and ``make_task``: a trainable task drawn and stored through the services."""

from __future__ import annotations

import itertools

import factory
import numpy as np
from django.contrib.auth import get_user_model

from apps.images.services import training_image_ingest
from apps.labels.models import Label
from apps.labels.services import label_create
from apps.tasks.models import Task
from apps.tasks.services import label_attach, task_create
from apps.training import artifacts
from apps.workspaces import services
from tests.pictures import COLOURS, brightness, halves, picture, solid


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw-123456")

    @factory.post_generation
    def default_workspace(self, create, extracted, **kwargs):
        if create:
            self.save()
            services.workspace_ensure_default(user=self)


class TaskFactory(factory.django.DjangoModelFactory):
    """A multi_class task; pass ``workspace=``. Made through the ORM (no negative label)."""

    class Meta:
        model = "tasks.Task"

    name = factory.Sequence(lambda n: f"task {n}")
    owner = factory.LazyAttribute(lambda task: task.workspace.owner)


class LabelFactory(factory.django.DjangoModelFactory):
    """A category label; pass ``workspace=``."""

    class Meta:
        model = "labels.Label"

    name = factory.Sequence(lambda n: f"label {n}")


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """A model version of ``task=`` (QUEUED unless told), in the task's workspace, numbered in turn."""

    class Meta:
        model = "training.ModelVersion"

    workspace = factory.LazyAttribute(lambda version: version.task.workspace)
    version = factory.Sequence(lambda n: n + 1)


_image_numbers = itertools.count()


class TrainingImageFactory(factory.Factory):
    """A training image of ``workspace=`` ingested through the service (file, thumbnail and hash
    included), with ``label_ids=`` and any other ``training_image_ingest`` argument. Each drawn
    picture differs, so none is refused as a duplicate."""

    class Meta:
        model = dict  # built by _create through the service, not by the ORM

    @classmethod
    def _create(cls, model_class, *, workspace, data=None, **kwargs):
        if data is None:
            n = next(_image_numbers)
            data = picture(size=(40 + n % 20, 30 + n // 20 % 20), color=(n % 256, (n * 7) % 256, 90))
        return training_image_ingest(workspace=workspace, data=data, **kwargs)


def add_trained_version(task, number: int, tmp_path):
    """A TRAINED version with (fake) files in storage, without training."""
    version = ModelVersionFactory(task=task, version=number, train_status="TRAINED")
    folder = tmp_path / f"fake-{version.pk}"
    folder.mkdir()
    for name in artifacts.ARTIFACT_FILES:
        (folder / name).write_text("{}")
    version.artifact_path = artifacts.save_artifacts(version, folder)
    version.save()
    return version


# --------------------------------------------------------------------------- trainable tasks

# Fast settings for a test training: a tiny net from scratch, a few epochs, a short budget.
FAST_TRAINING = {
    "VF_MIN_IMAGES_PER_LABEL": 5,
    "VF_TRAIN_ARCHITECTURE": "resnet10t",
    "VF_TRAIN_PRETRAINED": "none",
    "VF_TRAIN_EPOCHS": 4,
    "VF_TRAIN_TIME_BUDGET": 30,
    # One thread: on a busy 2-core CI machine two spinning OpenMP threads train ~4x slower.
    "VF_TRAIN_THREADS": 1,
}


def make_task(
    workspace, owner, task_type: str = Task.Type.MULTI_CLASS, *, labels: int = 2, per_label: int = 10, seed=0
):
    """A task of ``task_type`` with ``labels`` labels and ``per_label`` drawn images on each.

    multi_class: one colour per label. multi_label: two tags (left red half, right blue half),
    images with one, both, or (negative label) none. regression: one value label, brightness.
    """
    rng = np.random.default_rng(seed)
    task = task_create(workspace=workspace, owner=owner, name=f"{task_type} task", type=task_type)
    if task_type == Task.Type.REGRESSION:
        label = label_create(workspace=workspace, name="brightness", type=Label.Type.VALUE)
        label_attach(label=label, task=task)
        for value in np.linspace(0, 1, per_label):
            training_image_ingest(
                workspace=workspace, data=brightness(value, rng), values={label.id: float(value)}
            )
        return task, [label]
    if task_type == Task.Type.MULTI_LABEL:
        tags = [label_create(workspace=workspace, name=n, type=Label.Type.TAG) for n in ("red", "blue")]
        for tag in tags:
            label_attach(label=tag, task=task)
        negative = task.negative_labels.get()
        for i in range(per_label):
            training_image_ingest(workspace=workspace, data=halves(True, False, rng), label_ids=[tags[0].id])
            training_image_ingest(workspace=workspace, data=halves(False, True, rng), label_ids=[tags[1].id])
            if i % 2 == 0:
                training_image_ingest(
                    workspace=workspace, data=halves(True, True, rng), label_ids=[t.id for t in tags]
                )
                training_image_ingest(
                    workspace=workspace, data=halves(False, False, rng), label_ids=[negative.id]
                )
        return task, tags
    made = []
    for n in range(labels):
        label = label_create(workspace=workspace, name=f"colour{n}", type=Label.Type.CATEGORY)
        label_attach(label=label, task=task)
        for _ in range(per_label):
            training_image_ingest(
                workspace=workspace, data=solid(COLOURS[n % len(COLOURS)], rng), label_ids=[label.id]
            )
        made.append(label)
    return task, made
