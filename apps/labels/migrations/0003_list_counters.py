"""Label.images_count, kept by triggers on the image-label table instead of counted per request.

Triggers rather than services: image labels also go in cascades (an image, a workspace or a user
deleted; the admin) and in bulk SQL that no service sees. On PostgreSQL one statement-level trigger
per insert or delete adds up the rows it touched (a wipe of 500 images is one UPDATE per label, not
500); SQLite has row-level triggers only. ``label_id`` never changes on an existing row.
"""

from django.db import migrations, models

POSTGRESQL = [
    """
    CREATE FUNCTION labels_images_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE labels_label AS l SET images_count = l.images_count + d.n
        FROM (SELECT label_id, count(*) AS n FROM added GROUP BY label_id) AS d
        WHERE l.id = d.label_id;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION labels_images_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE labels_label AS l SET images_count = l.images_count - d.n
        FROM (SELECT label_id, count(*) AS n FROM removed GROUP BY label_id) AS d
        WHERE l.id = d.label_id;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER labels_images_count_added AFTER INSERT ON images_imagelabel
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION labels_images_count_added()
    """,
    """
    CREATE TRIGGER labels_images_count_removed AFTER DELETE ON images_imagelabel
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION labels_images_count_removed()
    """,
]
POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS labels_images_count_added ON images_imagelabel",
    "DROP TRIGGER IF EXISTS labels_images_count_removed ON images_imagelabel",
    "DROP FUNCTION IF EXISTS labels_images_count_added()",
    "DROP FUNCTION IF EXISTS labels_images_count_removed()",
]
SQLITE = [
    """
    CREATE TRIGGER labels_images_count_added AFTER INSERT ON images_imagelabel BEGIN
        UPDATE labels_label SET images_count = images_count + 1 WHERE id = NEW.label_id;
    END
    """,
    """
    CREATE TRIGGER labels_images_count_removed AFTER DELETE ON images_imagelabel BEGIN
        UPDATE labels_label SET images_count = images_count - 1 WHERE id = OLD.label_id;
    END
    """,
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS labels_images_count_added",
    "DROP TRIGGER IF EXISTS labels_images_count_removed",
]
BACKFILL = """
    UPDATE labels_label SET images_count = (
        SELECT count(*) FROM images_imagelabel WHERE images_imagelabel.label_id = labels_label.id
    )
"""


def install(apps, schema_editor):
    statements = POSTGRESQL if schema_editor.connection.vendor == "postgresql" else SQLITE
    for sql in [*statements, BACKFILL]:
        schema_editor.execute(sql)


def uninstall(apps, schema_editor):
    statements = POSTGRESQL_REVERSE if schema_editor.connection.vendor == "postgresql" else SQLITE_REVERSE
    for sql in statements:
        schema_editor.execute(sql)


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
        migrations.RunPython(install, uninstall),
    ]
