"""Counters the database keeps: the SQL a ``BucketCounter`` installs is built only from names it
has checked, and counts per group and per minute or hour (the triggers themselves run in the
PostgreSQL pass: tests/images/test_list_scale.py)."""

from __future__ import annotations

import pytest

from apps.core.counters import BucketCounter

NAMES = dict(
    name="images_minutes", source="images_trainingimage", group="workspace_id", stamp="created",
    unit="minute", target="images_imageminute", column="images",
)  # fmt: skip


@pytest.mark.parametrize(
    "bad", [{"unit": "week"}, {"unit": "minute; DROP TABLE x"}, {"stamp": "created)"}, {"target": "A"}]
)
def test_a_bucket_counter_refuses_anything_but_plain_names_and_known_units(bad):
    with pytest.raises(ValueError):
        BucketCounter(**{**NAMES, **bad})


def test_a_bucket_counter_groups_by_its_column_and_the_truncated_timestamp_on_both_events():
    added, added_trigger, removed, removed_trigger = BucketCounter(**{**NAMES, "unit": "hour"}).postgresql()
    bucket = "date_trunc('hour', created AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    assert "workspace_id, " + bucket + ", count(*) FROM changed GROUP BY 1, 2" in added
    assert "ON CONFLICT (workspace_id, hour) DO UPDATE SET images = images_imageminute.images +" in added
    assert "workspace_id AS g, " + bucket + " AS b, count(*) AS n FROM changed GROUP BY 1, 2" in removed
    assert "WHERE t.workspace_id = d.g AND t.hour = d.b" in removed
    assert "AFTER INSERT ON images_trainingimage REFERENCING NEW TABLE" in added_trigger
    assert "AFTER DELETE ON images_trainingimage REFERENCING OLD TABLE" in removed_trigger


@pytest.mark.django_db
def test_every_migration_leaves_the_counters_triggers_on_the_tables_they_count():
    """A later migration that rebuilds a counted table (SQLite rebuilds a table to add a column with
    a default) silently drops its triggers; the counts then stop moving."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")
        else:
            cursor.execute(
                "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal"
            )
        triggers = cursor.fetchall()
    tables = {table for table, _ in triggers}
    assert {"images_trainingimage", "images_imagelabel"} <= tables, triggers
