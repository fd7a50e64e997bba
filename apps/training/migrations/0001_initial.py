# ModelVersion, moved here from apps.tasks (tasks.0002). The table keeps its name,
# tasks_modelversion, so an existing database keeps its rows: this migration changes Django's
# state only, and renames the content type so admin permissions carry over.

import uuid

import django.db.models.deletion
from django.db import migrations, models


def rename_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label="training", model="modelversion").exists():
        ContentType.objects.using(db).filter(app_label="tasks", model="modelversion").update(
            app_label="training"
        )


def restore_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label="tasks", model="modelversion").exists():
        ContentType.objects.using(db).filter(app_label="training", model="modelversion").update(
            app_label="tasks"
        )


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("tasks", "0002_move_modelversion_to_training"),
        ("workspaces", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ModelVersion",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ("version", models.PositiveIntegerField()),
                        ("train_status", models.CharField(choices=[("QUEUED", "Queued"), ("IN_TRAINING", "In Training"), ("TRAINED", "Trained"), ("FAILED", "Failed")], default="QUEUED", max_length=16)),
                        ("created", models.DateTimeField(auto_now_add=True)),
                        ("started", models.DateTimeField(blank=True, null=True)),
                        ("finished", models.DateTimeField(blank=True, null=True)),
                        ("progress", models.FloatField(default=0.0)),
                        ("epoch", models.PositiveIntegerField(blank=True, null=True)),
                        ("loss", models.FloatField(blank=True, null=True)),
                        ("accuracy", models.FloatField(blank=True, null=True)),
                        ("metrics", models.JSONField(blank=True, default=dict)),
                        ("warnings", models.JSONField(blank=True, default=list)),
                        ("split", models.JSONField(blank=True, default=dict)),
                        ("evaluation", models.JSONField(blank=True, default=list)),
                        ("artifact_path", models.CharField(blank=True, default="", max_length=512)),
                        ("heartbeat", models.DateTimeField(blank=True, null=True)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("workspace", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="model_versions", to="workspaces.workspace")),
                        ("task", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="versions", to="tasks.task")),
                    ],
                    options={
                        "db_table": "tasks_modelversion",
                        "ordering": ["task", "version"],
                        "constraints": [models.UniqueConstraint(fields=("task", "version"), name="unique_task_version")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(rename_content_type, restore_content_type),
    ]
