"""A million training images in seconds, for the list tests and bench/bench_lists.py.

Rows only, no files: ``INSERT ... SELECT generate_series`` in one statement per table, so the
counting triggers fire once per statement, as they would for any bulk write. On SQLite (no
generate_series) a recursive CTE counts instead, and the triggers fire per row, as they always do
there.
"""

from __future__ import annotations

from django.db import connection


def fill_images(
    *, workspace_id, count: int, start: int = 0, labels: dict | None = None, step: str = "1 second"
) -> None:
    """Add images ``start .. start + count - 1`` to the workspace; ``labels`` maps a label id to
    ``n``: every n-th image carries it (with ``value = i % 10``, harmless on a category).

    Image ``i`` is ``test_image`` when ``i % 10 == 0``, ``real`` when ``i % 3 == 0``, verified
    ``i % 2`` times; two images share each ``created`` instant, one ``step`` (a PostgreSQL
    interval; on SQLite "<n> <unit>", unit microsecond(s), second(s) or minute(s)) after the two
    before (ties are broken by id), and a higher ``i`` is newer.
    """
    if connection.vendor == "sqlite":
        _fill_sqlite(workspace_id=workspace_id, count=count, start=start, labels=labels, step=step)
        return
    # Ids and hashes rise with i (the workspace's first 20 hex digits, then i): the indexes fill at
    # their right edge, several times faster than random keys.
    prefix = str(workspace_id).replace("-", "")[:20]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO images_trainingimage (id, workspace_id, file, thumbnail, img_width, img_height,
                content_hash, meta_data, test_image, real, verify_count, created)
            SELECT (%(prefix)s || lpad(to_hex(i), 12, '0'))::uuid, %(ws)s::uuid, 'bulk/' || i || '.jpg',
                'bulk/' || i || '-thumb.jpg', 64, 48, lpad(to_hex(i), 64, '0'),
                '{}'::jsonb, i %% 10 = 0, i %% 3 = 0, i %% 2,
                timestamptz '2026-01-01 00:00:00+00' + (i / 2) * %(step)s::interval
            FROM generate_series(%(first)s, %(last)s) AS i
            """,
            {
                "ws": str(workspace_id),
                "prefix": prefix,
                "first": start,
                "last": start + count - 1,
                "step": step,
            },
        )
        for label_id, every in (labels or {}).items():
            cursor.execute(
                """
                INSERT INTO images_imagelabel (image_id, label_id, value)
                SELECT (%(prefix)s || lpad(to_hex(i), 12, '0'))::uuid, %(label)s::uuid, i %% 10
                FROM generate_series(%(first)s, %(last)s) AS i WHERE i %% %(every)s = 0
                """,
                {
                    "prefix": prefix,
                    "label": str(label_id),
                    "every": every,
                    "first": start,
                    "last": start + count - 1,
                },
            )


def image_id(workspace_id, i: int) -> str:
    """The id ``fill_images`` gives image ``i`` of the workspace."""
    hex_id = str(workspace_id).replace("-", "")[:20] + f"{i:012x}"
    return f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"


_MICROSECONDS = {"microsecond": 1, "second": 1_000_000, "minute": 60_000_000}
# SQLite's rows of i (a recursive CTE) and the timestamp as Django writes it: "YYYY-MM-DD HH:MM:SS"
# and ".ffffff" unless the microseconds are 0 (a cursor's key must equal the stored text).
_LITE_SERIES = "WITH RECURSIVE s(i) AS (SELECT %(first)s UNION ALL SELECT i + 1 FROM s WHERE i < %(last)s) "
_LITE_CREATED = (
    "strftime('%%Y-%%m-%%d %%H:%%M:%%S', '2026-01-01', '+' || ((i / 2) * %(step)s / 1000000) || ' seconds')"
    " || CASE WHEN (i / 2) * %(step)s %% 1000000 = 0 THEN '' "
    "ELSE printf('.%%06d', (i / 2) * %(step)s %% 1000000) END"
)


def _fill_sqlite(*, workspace_id, count: int, start: int, labels: dict | None, step: str) -> None:
    amount, unit = step.split()
    params = {
        "ws": str(workspace_id).replace("-", ""),
        "prefix": str(workspace_id).replace("-", "")[:20],
        "first": start,
        "last": start + count - 1,
        "step": int(amount) * _MICROSECONDS[unit.rstrip("s")],
    }
    with connection.cursor() as cursor:
        cursor.execute(
            _LITE_SERIES  # noqa: S608 (constants; the values are parameters)
            + """
            INSERT INTO images_trainingimage (id, workspace_id, file, thumbnail, img_width, img_height,
                content_hash, meta_data, test_image, real, verify_count, created)
            SELECT %(prefix)s || printf('%%012x', i), %(ws)s, 'bulk/' || i || '.jpg',
                'bulk/' || i || '-thumb.jpg', 64, 48, printf('%%064x', i), '{}', i %% 10 = 0, i %% 3 = 0,
                i %% 2, """
            + _LITE_CREATED
            + " FROM s",
            params,
        )
        for label_id, every in (labels or {}).items():
            cursor.execute(
                _LITE_SERIES  # noqa: S608 (constants; the values are parameters)
                + """
                INSERT INTO images_imagelabel (image_id, label_id, value)
                SELECT %(prefix)s || printf('%%012x', i), %(label)s, i %% 10 FROM s WHERE i %% %(every)s = 0
                """,
                {**params, "label": str(label_id).replace("-", ""), "every": every},
            )
