"""ModelVersion moved from apps.tasks to apps.training without moving a row.

A database migrated by the code before the move (tasks.0001 holding ModelVersion, no training app)
with versions in it migrates forward to today's schema, and the versions read back through the ORM
and the API.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.training.models import ModelVersion

BEFORE_THE_MOVE = [("tasks", "0001_initial"), ("training", None)]


@pytest.mark.django_db(transaction=True)
def test_an_old_database_keeps_its_model_versions_and_serves_them(api, user, workspace):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_THE_MOVE)
    old = MigrationExecutor(connection).loader.project_state([("tasks", "0001_initial")]).apps
    assert old.get_model("tasks", "ModelVersion")._meta.db_table == "tasks_modelversion"
    OldTask = old.get_model("tasks", "Task")
    OldModelVersion = old.get_model("tasks", "ModelVersion")
    task = OldTask.objects.create(
        workspace_id=workspace.pk, owner_id=user.pk, name="pets", production_version=2
    )
    for number in (1, 2):
        OldModelVersion.objects.create(
            workspace_id=workspace.pk,
            task_id=task.pk,
            version=number,
            train_status="TRAINED",
            accuracy=0.5 + number / 10,
            metrics={"accuracy": 0.5 + number / 10},
        )

    forward = MigrationExecutor(connection)
    forward.migrate(forward.loader.graph.leaf_nodes())

    versions = ModelVersion.objects.filter(task_id=task.pk).order_by("version")
    assert [(v.version, v.accuracy, v.metrics) for v in versions] == [
        (1, 0.6, {"accuracy": 0.6}),
        (2, 0.7, {"accuracy": 0.7}),
    ]
    listed = api.get(f"/recognition/v2/model/?task={task.pk}").json()
    assert listed["count"] == 2
    assert {(m["version"], m["is_production"], m["task_name"]) for m in listed["results"]} == {
        (1, False, "pets"),
        (2, True, "pets"),
    }
    one = api.get(f"/recognition/v2/model/{versions[0].pk}").json()
    assert one["accuracy"] == 0.6 and one["train_status"] == "TRAINED"


@pytest.mark.django_db(transaction=True)
def test_the_move_migrates_back_and_forth_without_touching_the_table():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_THE_MOVE)
    assert "tasks_modelversion" in connection.introspection.table_names()
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert "tasks_modelversion" in connection.introspection.table_names()
    assert ModelVersion._meta.db_table == "tasks_modelversion"
