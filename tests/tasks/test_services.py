"""Task services: the rules of attaching labels to a task and detaching them, and deploying a trained
version, without HTTP."""

from __future__ import annotations

import pytest

from apps.core.errors import DomainError, NotFoundError
from apps.labels.models import Label
from apps.labels.selectors import MSG_LABEL_NOT_FOUND
from apps.tasks import services
from apps.training.models import ModelVersion
from apps.workspaces.services import workspace_create
from tests.factories import LabelFactory, TaskFactory, add_trained_version, make_task

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("task_type", "label_type"),
    [("multi_class", "category"), ("multi_label", "tag"), ("regression", "value")],
)
def test_each_task_type_takes_its_own_label_type_and_attaching_twice_is_harmless(
    workspace, task_type, label_type
):
    task = TaskFactory(workspace=workspace, type=task_type)
    label = LabelFactory(workspace=workspace, type=label_type)
    services.label_attach(label=label, task=task)
    services.label_attach(label=label, task=task)
    assert list(task.labels.all()) == [label]


def test_it_refuses_a_label_of_another_type_with_the_expected_one_named(workspace):
    task = TaskFactory(workspace=workspace, type="multi_class")
    tag = LabelFactory(workspace=workspace, type=Label.Type.TAG)
    with pytest.raises(DomainError) as refused:
        services.label_attach(label=tag, task=task)
    assert refused.value.message == services.MSG_LABEL_TYPE_MISMATCH.format(
        task_type="multi_class", expected="category", label_type="tag"
    )


def test_a_label_of_another_workspace_is_not_found_either_way(workspace, other_user):
    task = TaskFactory(workspace=workspace)
    elsewhere = LabelFactory(workspace=workspace_create(owner=other_user, name="Other"))
    for service in (services.label_attach, services.label_detach):
        with pytest.raises(NotFoundError) as missing:
            service(label=elsewhere, task=task)
        assert missing.value.message == MSG_LABEL_NOT_FOUND


def test_detaching_keeps_the_label_but_never_the_negative_one(user, workspace):
    task = services.task_create(workspace=workspace, owner=user, name="tags", type="multi_label")
    negative = task.negative_labels.get()
    tag = LabelFactory(workspace=workspace, type=Label.Type.TAG)
    services.label_attach(label=tag, task=task)
    services.label_detach(label=tag, task=task)
    assert list(task.labels.all()) == [negative] and Label.objects.filter(pk=tag.pk).exists()
    with pytest.raises(DomainError) as refused:
        services.label_detach(label=negative, task=task)
    assert refused.value.message == services.MSG_NEGATIVE_LABEL_DETACH


@pytest.mark.parametrize(
    ("task_type", "label_type"),
    [("multi_class", "category"), ("multi_label", "tag"), ("regression", "value")],
)
def test_a_label_created_for_a_task_has_the_type_the_task_takes_and_is_attached(
    workspace, task_type, label_type
):
    task = TaskFactory(workspace=workspace, type=task_type)
    label = services.task_label_create(task=task, name="cat")
    assert (label.workspace, label.name, label.type) == (workspace, "cat", label_type)
    assert task.labels.filter(pk=label.pk).exists()


def test_deploying_a_version_that_is_not_trained_is_refused(user, workspace, tmp_path):
    task, _ = make_task(workspace, user, per_label=5)
    add_trained_version(task, 1, tmp_path)
    ModelVersion.objects.create(workspace=workspace, task=task, version=2, train_status="FAILED")

    with pytest.raises(DomainError) as refused:
        services.task_deploy(task=task, version=2)
    deployed = services.task_deploy(task=task, version=1)

    assert refused.value.message == services.MSG_VERSION_NOT_TRAINED.format(version=2)
    assert deployed.production_version == 1
    task.refresh_from_db()
    assert task.production_version == 1
