"""The blocks of rows the database keeps for long lists (apps/core/positions.py): a workspace's
images in a burst (every row in the same minute, or the same instant) are cut into blocks that
partition the list exactly as images come and go, one at a time, in bulk and from 16 writers at
once, and a deep page seeks through them into one block: its plan searches an index and skips
fewer than two blocks' worth of entries.

On the database the run uses: SQLite by default, PostgreSQL when DATABASE_URL names one (CI).
"""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from apps.core import pagination
from apps.core.models import ListBlock
from apps.core.positions import ListBlocks
from apps.images.models import TrainingImage
from apps.workspaces.models import Workspace
from tests.bulk import fill_images, image_id
from tests.factories import UserFactory

BASE = "/recognition/v2/training-image/"
SIZE = 1000  # the image list's block size (core's migration 0001)
SOURCE = TrainingImage._meta.db_table


@pytest.mark.parametrize(
    "bad", [{"source": "images; DROP TABLE x"}, {"scope": "Workspace"}, {"key": "created)"}, {"size": 1}]
)
def test_list_blocks_refuse_anything_but_plain_names_and_a_real_size(bad):
    with pytest.raises(ValueError):
        ListBlocks(**{"name": "images_positions", "source": SOURCE, "scope": "workspace_id", **bad})


def _check_blocks(workspace) -> list[int]:
    """Assert that the workspace's blocks partition its list: each block's size is the number of
    images from its first key to the next block's (counted in the table), none is empty, and only
    the newest block starts at TOP; return the sizes in list order."""
    blocks = list(
        ListBlock.objects.filter(source=SOURCE, scope=workspace.pk).order_by("-created", "first_id")
    )
    images = TrainingImage.objects.filter(workspace=workspace)
    if not images.exists():
        assert blocks == []
        return []
    assert blocks[0].created.year == 9999 and all(block.created.year < 9999 for block in blocks[1:])

    def before(block) -> int:  # images before the block's first key, in list order
        return (
            images.filter(created__gte=block.created)
            .exclude(created=block.created, pk__gte=block.first_id)
            .count()
        )

    starts = [before(block) for block in blocks] + [images.count()]
    assert [block.size for block in blocks] == [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(block.size > 0 for block in blocks)
    return [block.size for block in blocks]


def _new_image(workspace, n: int) -> TrainingImage:
    return TrainingImage.objects.create(
        workspace=workspace, file=f"{n}.jpg", img_width=1, img_height=1, content_hash=f"f{n:063x}"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("step", ["0 second", "5 microseconds"])  # one instant; a burst of 12 ms
def test_the_blocks_partition_a_burst_exactly_as_images_come_and_go(workspace, step):
    fill_images(workspace_id=workspace.id, count=5 * SIZE + 7, step=step)
    sizes = _check_blocks(workspace)
    assert sum(sizes) == 5 * SIZE + 7 and all(size < 2 * SIZE for size in sizes) and len(sizes) >= 3
    other = Workspace.objects.create(name="other", owner=UserFactory())
    fill_images(workspace_id=other.id, count=2 * SIZE + 1, step=step)
    assert sum(_check_blocks(other)) == 2 * SIZE + 1

    # More in a burst on top, one by one (the ORM), gone one by one and in bulk across blocks
    fill_images(workspace_id=workspace.id, count=SIZE, start=5 * SIZE + 7, step=step)
    for n in range(30):
        _new_image(workspace, n)
    TrainingImage.objects.get(pk=image_id(workspace.id, 4)).delete()
    doomed = [image_id(workspace.id, i) for i in range(100, 4000, 3)]
    TrainingImage.objects.filter(workspace=workspace, pk__in=doomed).delete()
    # a whole block's worth, from the oldest end: its blocks go
    TrainingImage.objects.filter(pk__in=[image_id(workspace.id, i) for i in range(0, 100)]).delete()
    sizes = _check_blocks(workspace)
    assert (
        sum(sizes)
        == TrainingImage.objects.filter(workspace=workspace).count()
        == 6 * SIZE + 7 + 30 - 1 - 1300 - 99
    )

    other.delete()  # its images go in the cascade, and its blocks with the last of them
    assert not ListBlock.objects.filter(scope=other.pk).exists()
    TrainingImage.objects.filter(workspace=workspace).delete()
    assert _check_blocks(workspace) == []


@pytest.mark.django_db
def test_every_page_of_a_burst_is_the_slice_of_the_list_when_pages_seek(api, workspace, monkeypatch):
    monkeypatch.setattr(pagination, "SEEK_FROM", 1)  # every page but the first and last seeks
    fill_images(workspace_id=workspace.id, count=4 * SIZE + 321, step="0 second")  # one instant
    TrainingImage.objects.filter(pk__in=[image_id(workspace.id, i) for i in range(1500, 2600, 2)]).delete()
    for n in range(3):
        _new_image(workspace, n)
    expected = [
        str(pk) for pk in TrainingImage.objects.filter(workspace=workspace).values_list("pk", flat=True)
    ]
    seen = []
    for page in range(1, -(-len(expected) // 100) + 1):
        body = api.get(BASE, {"page": page, "page_size": 100}).json()
        assert body["count"] == len(expected)
        seen += [item["id"] for item in body["results"]]
        assert (body["next"] is None) == (page * 100 >= len(expected))
    assert seen == expected


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
            return "\n".join(row[-1] for row in cursor.fetchall())
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db
def test_a_deep_page_of_a_burst_searches_the_index_and_skips_less_than_two_blocks(api, workspace):
    """30,000 images created within 15 ms: the middle page reads the blocks (one query), then the
    page's ids from its block's first key (an index range, fewer than 2 * SIZE entries skipped),
    the page by id and its labels."""
    rows = 30_000
    fill_images(workspace_id=workspace.id, count=rows, step="1 microsecond")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # the statistics autovacuum keeps on a live server
            cursor.execute("ANALYZE images_trainingimage")
            cursor.execute("ANALYZE core_listblock")
    api.get(BASE)  # token and default workspace cached
    page = rows // 25 // 2
    with CaptureQueriesContext(connection) as captured:
        body = api.get(BASE, {"page": page}).json()
    offset = (page - 1) * 25
    ordered = TrainingImage.objects.filter(workspace=workspace).values_list("pk", flat=True)
    assert [item["id"] for item in body["results"]] == [str(pk) for pk in ordered[offset : offset + 25]]
    reads = [query["sql"] for query in captured if SOURCE in query["sql"]]
    seek = [sql for sql in captured.captured_queries if "core_listblock" in sql["sql"]]
    assert len(seek) == 1, [query["sql"] for query in captured]
    ids = [sql for sql in reads if re.search(r"OFFSET \d+", sql) and "core_listblock" not in sql]
    assert len(ids) == 1, reads
    assert int(re.search(r"OFFSET (\d+)", ids[0]).group(1)) < 2 * SIZE
    for sql in [seek[0]["sql"], *reads]:
        plan = _plan(sql)
        if connection.vendor == "sqlite":
            # SEARCH: an index range or lookup; a SCAN of either table would read all of it.
            assert not re.search(r"\bSCAN (images_trainingimage|core_listblock)\b", plan), (sql, plan)
        else:
            assert "Seq Scan on images_trainingimage" not in plan, (sql, plan)
            if sql == ids[0]:  # the skip reads the index in list order, never sorts the rows
                assert "Sort" not in plan and "Index" in plan, (sql, plan)


@pytest.mark.django_db(transaction=True)
def test_sixteen_writers_at_once_keep_the_blocks_exact(workspace):
    """16 threads add images (and delete some of theirs) at once, each in its own transaction:
    the blocks still partition the list, across at least one split."""
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith("file:memorydb"):
        # Shared-cache memory databases refuse a second writer ("table is locked") instead of
        # waiting; on a file, SQLite writers take turns on one lock (tests/test_load.py runs 16).
        pytest.skip("SQLite in memory: one writer at a time")
    errors = []

    def write(writer: int) -> None:
        try:
            for n in range(160):
                image = _new_image(workspace, writer * 1000 + n)
                if n % 8 == 0:
                    image.delete()
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    sizes = _check_blocks(workspace)
    assert sum(sizes) == 16 * 140 and len(sizes) >= 2
