# ModelVersion moved to apps.training. Only Django's state changes here: the table
# (tasks_modelversion) and its rows stay where they are; training.0001 takes the model over.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("tasks", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ModelVersion")],
            database_operations=[],
        ),
    ]
