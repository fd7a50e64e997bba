"""PostgreSQL: the rows a statement adds to (or removes from) the newest block of their list are
counted by one comparison each, no index lookup (apps/core/positions.py); the functions 0001 and
0003 installed are replaced. SQLite's triggers are unchanged."""

from django.db import migrations

from apps.core.positions import ListBlocks

IMAGE_LIST_BLOCKS = ListBlocks(name="images_positions", source="images_trainingimage", scope="workspace_id")


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0003_list_blocks_split_once'),
    ]

    operations = [
        migrations.RunPython(IMAGE_LIST_BLOCKS.replace_functions, migrations.RunPython.noop),
    ]
