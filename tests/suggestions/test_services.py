"""The training lifecycle's finish scores the pool again; the scoring job survives a broken image."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.storage import default_storage

from apps.images.services import training_image_ingest
from apps.suggestions import jobs
from apps.suggestions.models import SuggestionRun
from apps.training import artifacts
from apps.training.models import ModelVersion
from apps.training.services import model_version_finish
from tests.suggestions.conftest import BLUE, RED, solid

pytestmark = pytest.mark.django_db


def test_a_deployed_training_scores_the_pool(
    workspace, colour_task, colour_model, django_capture_on_commit_callbacks
):
    task = colour_task(trained=False)
    rng = np.random.default_rng(0)
    for colour in (RED, BLUE, (120, 40, 130)):
        training_image_ingest(workspace=workspace, data=solid(colour, rng))
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status=ModelVersion.Status.IN_TRAINING
    )
    path = artifacts.save_artifacts(version, colour_model)
    with django_capture_on_commit_callbacks(execute=True):
        model_version_finish(
            version_id=version.pk, metrics={}, warnings=[], evaluation=[], artifact_path=path
        )
    run = SuggestionRun.objects.get(task=task)
    assert (run.status, run.version, run.total, run.suggestions.count()) == ("DONE", 1, 3, 3)


def test_a_training_of_a_task_without_a_pool_scores_nothing(
    workspace, colour_task, colour_model, django_capture_on_commit_callbacks
):
    task = colour_task(trained=False)
    version = ModelVersion.objects.create(
        workspace=workspace, task=task, version=1, train_status=ModelVersion.Status.IN_TRAINING
    )
    path = artifacts.save_artifacts(version, colour_model)
    with django_capture_on_commit_callbacks(execute=True):
        model_version_finish(
            version_id=version.pk, metrics={}, warnings=[], evaluation=[], artifact_path=path
        )
    assert not SuggestionRun.objects.exists()


def test_an_image_whose_file_is_gone_is_skipped_and_the_rest_scored(workspace, colour_task):
    task = colour_task()
    rng = np.random.default_rng(0)
    images = [training_image_ingest(workspace=workspace, data=solid(c, rng)) for c in (RED, BLUE)]
    default_storage.delete(images[0].file)
    run = SuggestionRun.objects.create(workspace=workspace, task=task, version=1)
    jobs.score_pool(str(run.pk))
    run.refresh_from_db()
    assert run.status == "DONE" and run.total == 2
    assert [s.image_id for s in run.suggestions.all()] == [images[1].pk]
    jobs.score_pool(str(run.pk))  # twice: a finished run is left as it is
    assert run.suggestions.count() == 1


def test_a_run_whose_version_is_gone_fails_with_the_reason(workspace, colour_task):
    task = colour_task()
    run = SuggestionRun.objects.create(workspace=workspace, task=task, version=7)
    jobs.score_pool(str(run.pk))
    run.refresh_from_db()
    assert run.status == "FAILED" and "version 7" in run.error.lower()
