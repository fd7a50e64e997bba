"""Training through the API with eager jobs: train, evaluate, deploy, retrain, model endpoints."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.files.storage import default_storage

from apps.recognition import training as kind
from apps.tasks.models import Task
from apps.tasks.services import MSG_TASK_TRAINING
from apps.training import artifacts
from apps.training import services as training
from apps.training.models import ModelVersion
from apps.workspaces import services as workspace_services
from ml.recognition.predictor import Predictor
from tests.factories import add_trained_version, make_task

pytestmark = pytest.mark.usefixtures("fast_training")

PREFIXES = ["/recognition/v2/", "/v2/"]
MODEL_FIELDS = {
    "id", "task", "task_name", "version", "train_status", "created", "started", "finished", "progress",
    "accuracy", "metrics", "is_production", "warnings", "epoch", "loss",
}  # fmt: skip


def train(api, task, django_capture_on_commit_callbacks, prefix="/recognition/v2/"):
    """POST train; the job (eager) runs when the request's transaction commits."""
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{prefix}task/{task.id}/train/")
    return response


@pytest.mark.slow
@pytest.mark.parametrize("task_type", ["multi_class", "multi_label", "regression"])
def test_it_trains_evaluates_deploys_and_retrains_each_task_type(
    api, user, workspace, task_type, django_capture_on_commit_callbacks, settings
):
    if task_type == "regression":
        settings.VF_TRAIN_EPOCHS = 12  # one step per epoch at 16 images; regression needs a dozen (MAE ~0.03)
    task, labels = make_task(workspace, user, task_type, per_label=10 if task_type != "regression" else 20)

    response = train(api, task, django_capture_on_commit_callbacks)
    assert response.status_code == 200, response.content
    assert set(response.json()) == MODEL_FIELDS
    assert response.json()["version"] == 1
    model_id = response.json()["id"]

    model = api.get(f"/recognition/v2/model/{model_id}").json()
    assert model["train_status"] == "TRAINED", model["metrics"]
    assert model["progress"] == 100.0
    assert model["is_production"] is True
    assert model["task"] == str(task.id) and model["task_name"] == task.name
    metrics = model["metrics"]
    assert metrics["number_of_training_images"] + metrics["number_of_testing_images"] == task_images(task)
    assert metrics["number_of_testing_images"] >= 2
    assert metrics["training_time"] > 0 and "pretrained" in metrics
    if task_type == "regression":
        # Brightness 0..1 from a drawn grey level: far better than predicting the mean (MAE 0.25).
        assert metrics["mae"] < 0.15 and metrics["rmse"] is not None and "r2" in metrics
        assert model["accuracy"] is None
    else:
        assert model["accuracy"] >= 0.75  # chance: 0.5 (two colours) / 0.25 (four tag sets)
        for key in ("precision", "recall", "f1", "per_label", "confusion_matrix"):
            assert key in metrics
        assert {row["label_id"] for row in metrics["per_label"]} == {str(label.id) for label in labels}

    task.refresh_from_db()
    assert task.production_version == 1
    assert task.last_train_status == "TRAINED"

    # The split is recorded, and test_image / the evaluation agree with it.
    version = ModelVersion.objects.get(pk=model_id)
    assert len(version.split["test"]) == metrics["number_of_testing_images"]
    evaluation = api.get(f"/recognition/v2/model/{model_id}/evaluation/").json()
    assert set(evaluation) == {"id", "task", "version", "train_status", "count", "records"}
    assert evaluation["count"] == len(evaluation["records"]) == metrics["number_of_testing_images"]
    assert {r["image_id"] for r in evaluation["records"]} == set(version.split["test"])
    first = evaluation["records"][0]
    assert first["true_labels"] is not None and first["predicted_labels"] is not None

    # E-mails: started and finished, to the owner.
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["Training started", "Training finished"]
    assert mail.outbox[0].to == [user.email]

    # The artifacts load and predict without anything else.
    predictor = Predictor.load(artifacts.local_artifact_dir(version), device="cpu")
    assert [label["id"] for label in predictor.labels] == [str(label.id) for label in labels]

    # Retrain: version 2, deployed (the task does not keep its deployed version).
    response = train(api, task, django_capture_on_commit_callbacks, prefix="/v2/")
    assert response.json()["version"] == 2
    task.refresh_from_db()
    assert task.production_version == 2
    assert ModelVersion.objects.get(task=task, version=2).train_status == "TRAINED"
    assert len(mail.outbox) == 4


@pytest.mark.slow
def test_the_default_recipe_tries_candidates_and_the_whole_job_keeps_to_the_tasks_budget(
    api, user, workspace, django_capture_on_commit_callbacks, settings
):
    settings.VF_TRAIN_ARCHITECTURE = "auto"
    settings.VF_TRAIN_PRETRAINED = "auto"
    settings.VF_TRAIN_TIME_BUDGET = 600
    task, _ = make_task(workspace, user, per_label=12)
    # The task's own budget overrides the service's.
    response = api.patch(f"/recognition/v2/task/{task.id}", {"train_time_budget": 20}, format="json")
    assert response.status_code == 200 and response.json()["train_time_budget"] == 20

    response = train(api, task, django_capture_on_commit_callbacks)
    version = ModelVersion.objects.get(pk=response.json()["id"])
    assert version.train_status == "TRAINED", version.metrics
    metrics = version.metrics
    kinds = [c["kind"] for c in metrics["candidates"]]
    assert {"scratch", "probe"} <= set(kinds)  # 32 px images: a net from scratch is a candidate
    assert metrics["selected"] in [c["name"] for c in metrics["candidates"]]
    assert metrics["validation"]["images"] >= 2 and metrics["time_budget"] <= 20
    assert version.accuracy >= 0.75
    # The whole job, from the claim to TRAINED (the upload included), not only the fit.
    assert (version.finished - version.started).total_seconds() <= 20 + 2


def task_images(task) -> int:
    from apps.images.models import TrainingImage

    return TrainingImage.objects.filter(image_labels__label__tasks=task).distinct().count()


@pytest.mark.slow
def test_a_task_that_keeps_its_deployed_version_does_not_deploy_a_new_one(
    api, user, workspace, django_capture_on_commit_callbacks, tmp_path
):
    task, _ = make_task(workspace, user, per_label=6)
    add_trained_version(task, 1, tmp_path)
    Task.objects.filter(pk=task.pk).update(production_version=1, keep_deployed_version=True)

    response = train(api, task, django_capture_on_commit_callbacks)

    assert response.json()["version"] == 2
    assert ModelVersion.objects.get(task=task, version=2).train_status == "TRAINED"
    task.refresh_from_db()
    assert task.production_version == 1
    assert "stays in production" in mail.outbox[-1].body


@pytest.mark.slow
def test_test_images_are_always_on_the_test_side(api, user, workspace, django_capture_on_commit_callbacks):
    task, labels = make_task(workspace, user, per_label=6)
    marked = list(labels[0].images.order_by("id")[:3].values_list("id", flat=True))
    from apps.images.models import TrainingImage

    TrainingImage.objects.filter(id__in=marked).update(test_image=True)

    model_id = train(api, task, django_capture_on_commit_callbacks).json()["id"]

    split = ModelVersion.objects.get(pk=model_id).split
    assert {str(pk) for pk in marked} <= set(split["test"])
    assert not set(split["train"]) & set(split["test"])


def test_it_refuses_a_task_with_fewer_than_two_labels(api, user, workspace):
    task, _ = make_task(workspace, user, labels=1, per_label=5)

    response = api.post(f"/recognition/v2/task/{task.id}/train/")

    assert response.status_code == 400
    assert response.json() == {"detail": kind.MSG_TOO_FEW_LABELS.format(type="multi_class", count=1)}
    assert not ModelVersion.objects.exists()


def test_it_refuses_a_multi_label_task_whose_only_other_label_is_the_negative_one(api, user, workspace):
    from apps.labels.models import Label
    from apps.labels.services import label_create
    from apps.tasks.services import label_attach, task_create

    task = task_create(workspace=workspace, owner=user, name="tags", type="multi_label")
    label_attach(label=label_create(workspace=workspace, name="red", type=Label.Type.TAG), task=task)

    response = api.post(f"/v2/task/{task.id}/train")

    assert response.status_code == 400
    assert response.json()["detail"] == kind.MSG_TOO_FEW_LABELS.format(type="multi_label", count=1)


def test_it_names_the_labels_with_too_few_images(api, user, workspace, settings):
    settings.VF_MIN_IMAGES_PER_LABEL = 6
    task, labels = make_task(workspace, user, labels=3, per_label=6)
    labels[1].images.first().delete()
    labels[2].image_labels.all().delete()

    response = api.post(f"/recognition/v2/task/{task.id}/train/")

    assert response.status_code == 400
    assert response.json()["detail"] == kind.MSG_TOO_FEW_IMAGES.format(
        minimum=6, labels=f"{labels[1].name} (5), {labels[2].name} (0)"
    )
    task.refresh_from_db()
    assert task.last_train_status == "NOT_TRAINED"


def test_it_refuses_a_regression_task_with_too_few_values(api, user, workspace, settings):
    settings.VF_MIN_IMAGES_PER_LABEL = 8
    task, labels = make_task(workspace, user, "regression", per_label=7)

    response = api.post(f"/recognition/v2/task/{task.id}/train/")

    assert response.status_code == 400
    assert response.json()["detail"] == kind.MSG_TOO_FEW_VALUES.format(minimum=8, labels="brightness (7)")


def test_it_refuses_a_regression_task_without_a_value_label(api, user, workspace):
    from apps.tasks.services import task_create

    task = task_create(workspace=workspace, owner=user, name="r", type="regression")

    response = api.post(f"/recognition/v2/task/{task.id}/train/")

    assert response.status_code == 400
    assert response.json()["detail"] == kind.MSG_NO_VALUE_LABEL


def test_a_train_request_while_a_version_is_queued_answers_that_version(api, user, workspace, monkeypatch):
    enqueued = []
    monkeypatch.setattr(training, "_enqueue", enqueued.append)
    task, _ = make_task(workspace, user, per_label=5)

    with_commit = []
    for prefix in PREFIXES:
        response = api.post(f"{prefix}task/{task.id}/train/")
        assert response.status_code == 200
        with_commit.append(response.json()["id"])

    assert with_commit[0] == with_commit[1]
    assert ModelVersion.objects.filter(task=task).count() == 1
    version = ModelVersion.objects.get(task=task)
    assert version.train_status == "QUEUED"
    task.refresh_from_db()
    assert task.last_train_status == "IN_TRAINING"


def test_a_training_that_cannot_load_its_pretrained_weights_fails_with_the_reason(
    api, user, workspace, settings, django_capture_on_commit_callbacks
):
    settings.VF_TRAIN_PRETRAINED = "/nonexistent/weights.safetensors"
    task, _ = make_task(workspace, user, per_label=5)

    model_id = train(api, task, django_capture_on_commit_callbacks).json()["id"]

    model = api.get(f"/recognition/v2/model/{model_id}").json()
    assert model["train_status"] == "FAILED"
    assert "pretrained weights file not found" in model["metrics"]["error"]
    task.refresh_from_db()
    assert task.last_train_status == "FAILED" and task.production_version == -1
    assert mail.outbox[-1].subject.startswith("Training failed")
    assert "pretrained weights file not found" in mail.outbox[-1].body


def test_a_mail_that_cannot_be_sent_does_not_fail_the_training(
    api, user, workspace, settings, django_capture_on_commit_callbacks, monkeypatch
):
    def broken(*args, **kwargs):
        raise OSError("SMTP server unreachable")

    monkeypatch.setattr("apps.training.notifications.send_mail", broken)
    settings.VF_TRAIN_EPOCHS = 1
    task, _ = make_task(workspace, user, per_label=5)

    model_id = train(api, task, django_capture_on_commit_callbacks).json()["id"]

    assert ModelVersion.objects.get(pk=model_id).train_status == "TRAINED"


def test_an_owner_removed_from_the_workspace_gets_no_more_training_mails(
    other_api, user, other_user, shared_workspace, settings, django_capture_on_commit_callbacks
):
    from django.core import mail

    settings.VF_TRAIN_EPOCHS = 1
    task, _ = make_task(shared_workspace, user, per_label=5)  # the member owns the task
    workspace_services.membership_remove(workspace=shared_workspace, actor=other_user, user_id=user.pk)

    with django_capture_on_commit_callbacks(execute=True):
        response = other_api.post(f"/recognition/v2/task/{task.id}/train/?workspace={shared_workspace.id}")
    assert response.status_code == 200, response.content

    assert ModelVersion.objects.get(pk=response.json()["id"]).train_status == "TRAINED"
    assert mail.outbox == []


def test_model_list_is_filtered_by_task_paginated_and_needs_constant_queries(
    api, user, workspace, tmp_path, django_assert_max_num_queries
):
    task, _ = make_task(workspace, user, per_label=5)
    other, _ = make_task(workspace, user, per_label=5, seed=1)
    add_trained_version(task, 1, tmp_path)
    Task.objects.filter(pk=task.pk).update(production_version=1)
    add_trained_version(other, 1, tmp_path)
    api.get("/recognition/v2/model/")  # warm-up: the default workspace and the token exist

    with django_assert_max_num_queries(6) as few:
        page = api.get("/recognition/v2/model/", {"task": str(task.id)}).json()
    for number in range(2, 6):
        add_trained_version(task, number, tmp_path)
    with django_assert_max_num_queries(len(few.captured_queries)):
        more = api.get("/recognition/v2/model/").json()

    assert page["count"] == 1 and set(page["results"][0]) == MODEL_FIELDS
    assert page["results"][0]["is_production"] is True
    assert more["count"] == 6 and {"count", "next", "previous", "results"} <= set(more)
    assert sum(r["is_production"] for r in more["results"]) == 1


def test_model_endpoints_need_a_token(anon, user, workspace, tmp_path):
    task, _ = make_task(workspace, user, per_label=5)
    version = add_trained_version(task, 1, tmp_path)

    for response in (
        anon.get("/recognition/v2/model/"),
        anon.get(f"/recognition/v2/model/{version.pk}"),
        anon.get(f"/recognition/v2/model/{version.pk}/evaluation/"),
        anon.delete(f"/recognition/v2/model/{version.pk}"),
        anon.post(f"/recognition/v2/task/{task.id}/train/"),
    ):
        assert response.status_code == 401


def test_another_workspaces_task_and_models_are_not_found(other_api, user, workspace, tmp_path):
    task, _ = make_task(workspace, user, per_label=5)
    version = add_trained_version(task, 1, tmp_path)

    for response in (
        other_api.get(f"/recognition/v2/model/{version.pk}"),
        other_api.get(f"/recognition/v2/model/{version.pk}/evaluation/"),
        other_api.delete(f"/recognition/v2/model/{version.pk}"),
        other_api.post(f"/recognition/v2/task/{task.id}/train/"),
        other_api.post("/recognition/v2/task/not-a-uuid/train/"),
    ):
        assert response.status_code == 404
    assert other_api.get("/recognition/v2/model/").json()["count"] == 0
    assert ModelVersion.objects.filter(pk=version.pk).exists()


def test_the_production_version_cannot_be_deleted_but_another_can_with_its_files(
    api, user, workspace, tmp_path, django_capture_on_commit_callbacks
):
    task, _ = make_task(workspace, user, per_label=5)
    production = add_trained_version(task, 1, tmp_path)
    old = add_trained_version(task, 2, tmp_path)
    Task.objects.filter(pk=task.pk).update(production_version=1)
    cached = artifacts.local_artifact_dir(old)

    refused = api.delete(f"/recognition/v2/model/{production.pk}/")
    with django_capture_on_commit_callbacks(execute=True):  # files go after the commit
        deleted = api.delete(f"/v2/model/{old.pk}")

    assert refused.status_code == 400
    assert refused.json() == {"detail": training.MSG_DELETE_PRODUCTION}
    assert deleted.status_code == 204
    assert not ModelVersion.objects.filter(pk=old.pk).exists()
    assert not default_storage.exists(f"{old.artifact_path}/model.json")
    assert not cached.exists()
    assert default_storage.exists(f"{production.artifact_path}/model.json")


def test_a_version_in_training_cannot_be_deleted(api, user, workspace):
    task, _ = make_task(workspace, user, per_label=5)
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status="IN_TRAINING"
    )

    response = api.delete(f"/recognition/v2/model/{version.pk}")

    assert response.status_code == 409
    assert response.json() == {"detail": training.MSG_DELETE_ACTIVE}
    # Nor its task, while the version trains: its artifacts would land after the delete.
    response = api.delete(f"/recognition/v2/task/{task.pk}")
    assert response.status_code == 409
    assert response.json() == {"detail": MSG_TASK_TRAINING}
    assert ModelVersion.objects.filter(pk=version.pk).exists()


@pytest.mark.slow
def test_a_task_that_asks_for_a_final_refit_gets_one_and_its_version_records_it(
    api, user, workspace, django_capture_on_commit_callbacks
):
    task, _ = make_task(workspace, user, per_label=10)
    refused = api.patch(f"/recognition/v2/task/{task.id}", {"final_refit": "sometimes"}, format="json")
    assert refused.status_code == 400 and "final_refit" in refused.json()
    task.refresh_from_db()
    assert task.final_refit is False
    response = api.patch(f"/recognition/v2/task/{task.id}", {"final_refit": True}, format="json")
    assert response.status_code == 200 and response.json()["final_refit"] is True

    response = train(api, task, django_capture_on_commit_callbacks)
    version = ModelVersion.objects.get(pk=response.json()["id"])
    assert version.train_status == "TRAINED", version.metrics
    metrics = version.metrics
    images = metrics["number_of_training_images"] + metrics["number_of_testing_images"]
    assert metrics["final_refit"]["done"] is True and metrics["final_refit"]["images"] == images
    # The version's scores are those of the 80/20 run; its evaluation lists the test images.
    evaluation = api.get(f"/recognition/v2/model/{version.id}/evaluation/").json()
    assert evaluation["count"] == metrics["number_of_testing_images"]
    created = api.post(
        "/recognition/v2/task/", {"name": "refit from the start", "final_refit": True}, format="json"
    )
    assert created.status_code == 201 and created.json()["final_refit"] is True
