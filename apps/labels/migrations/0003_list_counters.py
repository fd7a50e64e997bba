"""Label.images_count, kept by triggers on the image-label table instead of counted per request.

Triggers rather than services (apps/core/counters.py says why); ``label_id`` never changes on an
existing image label.
"""

from django.db import migrations, models

from apps.core.counters import RowCounter

IMAGES_PER_LABEL = RowCounter(
    name="labels_images_count",
    source="images_imagelabel",
    group="label_id",
    target="labels_label",
    key="id",
    column="images_count",
)


class Migration(migrations.Migration):

    dependencies = [
        ('labels', '0002_initial'),
        ('images', '0002_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='label',
            name='images_count',
            field=models.BigIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(IMAGES_PER_LABEL.install, IMAGES_PER_LABEL.uninstall),
    ]
