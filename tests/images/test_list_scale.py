"""A million images in one workspace, created in a burst (PostgreSQL): every page, filter and the
label list read a fixed number of queries, and none of them scans the images table.

The rows are written in bulk SQL (tests/bulk.py) in seconds; the plans come from ``EXPLAIN`` of the
very queries each request ran. Skips without PostgreSQL (the SQLite pass), fails when CI=true.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.labels.models import Label
from apps.tasks.models import Task
from tests.bulk import fill_images, image_id
from tests.conftest import require_service

# Transactional: VACUUM (the visibility map that lets a count read the index alone, as autovacuum
# keeps it in production) cannot run inside the test's transaction. The rows are truncated after.
pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROWS = 1_000_000
BASE = "/recognition/v2/training-image/"


@pytest.fixture
def million(workspace):
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://...)")
    require_service(connection.vendor == "postgresql", "PostgreSQL")
    every, some, size = (
        Label.objects.create(workspace=workspace, name=name, type=kind)
        for name, kind in (("every", "category"), ("some", "category"), ("size", "value"))
    )
    task = Task.objects.create(workspace=workspace, name="pets")
    task.labels.add(some)
    started = time.monotonic()
    # Few image-label rows (each costs two foreign-key checks): a label's size no longer changes
    # what its list or its count costs, the kept counter answers either way.
    # A burst, as a folder or zip import makes it: two images a microsecond, the whole million
    # within half a second (one per-minute bucket would hold them all; the blocks do not care).
    fill_images(
        workspace_id=workspace.id,
        count=ROWS,
        labels={every.id: 20, some.id: 70, size.id: 50},
        step="1 microsecond",
    )
    filled = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE images_trainingimage")
        cursor.execute("VACUUM ANALYZE images_imagelabel")
    print(f"fill {filled - started:.1f} s, vacuum {time.monotonic() - filled:.1f} s")
    return {"every": every, "some": some, "size": size, "task": task}


def _plans(queries, *, counts: bool) -> list[str]:
    plans = []
    with connection.cursor() as cursor:
        for query in queries:
            if "images_trainingimage" not in query["sql"]:
                continue
            if not counts and query["sql"].startswith("SELECT COUNT(*)"):
                continue
            cursor.execute("EXPLAIN " + query["sql"])
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


def _get(api, params: dict, *, queries: int, path: str = BASE, counts: bool = True) -> dict:
    """GET, check the number of queries, and that no query of it (but a filtered count, with
    ``counts=False``) scans the images table."""
    with CaptureQueriesContext(connection) as captured:
        response = api.get(path, params)
    assert response.status_code == 200, response.content
    assert len(captured) == queries, [query["sql"] for query in captured]
    for plan in _plans(captured.captured_queries, counts=counts):
        assert "Seq Scan on images_trainingimage" not in plan, plan
    return response.json()


def test_a_million_images_page_filter_and_count_without_scanning_the_table(api, million):
    every, some, size, task = (million[key] for key in ("every", "some", "size", "task"))
    # token and default workspace (cached for the calls after this one), count (the counter), page,
    # the page's labels
    first = _get(api, {}, queries=5)
    assert first["count"] == ROWS and len(first["results"]) == 25 and first["previous"] is None
    newest = first["results"][0]
    assert newest["id"] == image_id(every.workspace_id, ROWS - 2)  # ties with ROWS - 1; id breaks it

    # page=N in the middle starts at the block of rows that holds its first row (the kept blocks of
    # about 1,000 rows, apps/core/positions.py), skips fewer than 2,000 index entries from there,
    # then reads the page by id: count, seek, ids, page, labels. Near the end it skips from the end
    # instead: count, ids, page, labels.
    last_page = ROWS // 100
    middle = _get(api, {"page": last_page // 2, "page_size": 100}, queries=5)
    offset = (last_page // 2 - 1) * 100
    assert [item["id"] for item in middle["results"]] == [
        image_id(every.workspace_id, _at(offset + k)) for k in range(100)
    ]
    last = _get(api, {"page": last_page, "page_size": 100}, queries=4)
    assert len(middle["results"]) == 100 and len(last["results"]) == 100 and last["next"] is None
    assert last["results"][-1]["created"] == "2026-01-01T00:00:00Z"

    # next links carry a cursor: the page after the middle one, and back again.
    after = _get(api, {"cursor": _cursor(middle["next"]), "page_size": 100}, queries=3)
    assert after["results"][0]["created"] <= middle["results"][-1]["created"]
    assert {item["id"] for item in after["results"]}.isdisjoint(item["id"] for item in middle["results"])
    back = _get(api, {"cursor": _cursor(after["previous"]), "page_size": 100}, queries=3)
    assert [item["id"] for item in back["results"]] == [item["id"] for item in middle["results"]]

    # One label: counted by the label's counter. Other filters: one COUNT of the matching rows on
    # the first page (the planner may scan the table for it when, as here, the workspace is the
    # whole table), carried in the cursor of the next links after it (one query fewer).
    assert _get(api, {"labels": str(some.id)}, queries=3)["count"] == len(range(0, ROWS, 70))
    filters = [
        ({"labels": f"{some.id},{size.id}"}, None),
        ({"label": str(every.id)}, ROWS // 20),
        ({"not_labels": str(some.id)}, ROWS - len(range(0, ROWS, 70))),
        ({"test": "true"}, ROWS // 10),
        ({"real": "true"}, len(range(0, ROWS, 3))),
        ({"task": str(task.id)}, len(range(0, ROWS, 70))),
        ({"unlabelled": "true"}, None),
        ({"verified": "1"}, ROWS // 2),
        ({f"label_value_{size.id}__lte": "5"}, ROWS // 50),
        ({"detection_labels": str(uuid.uuid4())}, 0),
    ]
    for params, count in filters:
        page = _get(api, params, queries=3 if count != 0 else 2, counts=False)  # no labels to read
        if count is not None:
            assert page["count"] == count, params
        if page["next"]:
            by_counter = "label" in params  # one label id: its counter answers again
            following = _get(api, {**params, "cursor": _cursor(page["next"])}, queries=3 if by_counter else 2)
            assert following["count"] == page["count"]

    # The label list reads the kept counts: 1 M images behind one label cost nothing.
    labels = _get(api, {}, queries=2, path="/recognition/v2/label/")  # count, page
    counts = {label["name"]: label["images_count"] for label in labels["results"]}
    assert counts == {"every": ROWS // 20, "some": len(range(0, ROWS, 70)), "size": ROWS // 50}


def _at(position: int, rows: int = ROWS) -> int:
    """The ``fill_images`` number of the image at ``position`` of the list (newest first): two
    images a second, the lower id (the even number) first."""
    return 2 * (rows // 2 - 1 - position // 2) + position % 2


def test_the_kept_hour_and_minute_counts_and_deep_pages_stay_exact_as_images_come_and_go(
    api, workspace, monkeypatch
):
    """The hour and minute counts are still kept (the list no longer reads them; the blocks of
    rows do, tests/core/test_positions.py), and pages spread over hours read right."""
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://...)")
    require_service(connection.vendor == "postgresql", "PostgreSQL")
    from apps.core import pagination
    from apps.images.models import ImageHour, ImageMinute, TrainingImage
    from apps.workspaces.models import Workspace
    from tests.factories import UserFactory

    monkeypatch.setattr(pagination, "SEEK_FROM", 1)  # every page but the first and last seeks
    # Two a minute: 500 minutes over 9 hours (120 an hour), so a page seeks across both levels.
    fill_images(workspace_id=workspace.id, count=1000, step="1 minute")
    other = Workspace.objects.create(name="other", owner=UserFactory())
    fill_images(workspace_id=other.id, count=300, step="1 minute")
    # Gone one by one (the ORM) and in bulk, across minute and hour boundaries; one more added the
    # ORM way (now, hours after the others).
    TrainingImage.objects.get(pk=image_id(workspace.id, 999)).delete()
    doomed = [image_id(workspace.id, i) for i in range(100, 400, 3)]
    TrainingImage.objects.filter(workspace=workspace, pk__in=doomed).delete()
    TrainingImage.objects.create(
        workspace=workspace, file="n.jpg", img_width=1, img_height=1, content_hash="f" * 64
    )
    other.delete()  # its images and its hour and minute counts go in the cascade
    kept = TrainingImage.objects.filter(workspace=workspace).order_by("-created", "id")
    expected = [str(pk) for pk in kept.values_list("pk", flat=True)]
    assert len(expected) == 1000 - 1 - 100 + 1
    for counts in (ImageHour.objects, ImageMinute.objects):
        assert sum(counts.filter(workspace=workspace).values_list("images", flat=True)) == len(expected)
        assert not counts.filter(workspace_id=other.id).exists()
    assert ImageHour.objects.filter(workspace=workspace).count() == 9 + 1

    seen = []
    for page in range(1, -(-len(expected) // 25) + 1):
        body = api.get(BASE, {"page": page, "page_size": 25}).json()
        seen += [item["id"] for item in body["results"]]
        assert (body["next"] is None) == (page * 25 >= len(expected))
    assert seen == expected


def _cursor(link: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(link).query)["cursor"][0]
