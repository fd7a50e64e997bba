"""PostgreSQL: a block a statement grew splits into all of its blocks in one pass over its rows
(apps/core/positions.py), instead of one split per 1,000 rows, each of which the planner could
read by sorting the whole table right after a bulk load. SQLite's triggers are unchanged."""

from django.db import migrations

from apps.core.positions import ListBlocks

IMAGE_LIST_BLOCKS = ListBlocks(name="images_positions", source="images_trainingimage", scope="workspace_id")


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0002_list_block_order'),
    ]

    operations = [
        migrations.RunPython(IMAGE_LIST_BLOCKS.replace_functions, migrations.RunPython.noop),
    ]
