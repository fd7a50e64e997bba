"""The console in a real browser: Debian's Chromium driven by Playwright, as a person would use it.

Sign in, create a task and two labels, drop image files on the labels, train, see the progress at
TRAINED and the confusion matrix, try an image, train again and switch the deployed version back,
sign out; for detection, draw a box with the mouse and see it saved. Screenshots of the main pages
go to ``VF_SCREENSHOTS_DIR`` (default ``var/console-screenshots`` in the project).

Chromium comes from the distribution (``apt-get install chromium``; scripts/test.sh installs it
when it can), never from Playwright's own download. Without it these tests skip on a laptop and
fail in CI. With eager jobs the train request trains inline in the live server's thread, so the
version page may open at TRAINED; the polling partial is tested with a version IN_TRAINING in
test_training.py.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from django.db import OperationalError, transaction

from apps.detection.models import DetectionObject
from apps.tasks.models import Task
from apps.training.models import ModelVersion
from tests.conftest import require_service
from tests.factories import UserFactory
from tests.pictures import COLOURS, solid

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "pw-123456"  # tests.factories.UserFactory's
PER_LABEL = 6
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(
    os.environ.get("VF_SCREENSHOTS_DIR", Path(__file__).resolve().parents[2] / "var" / "console-screenshots")
)


def _chromium() -> str | None:
    for candidate in (os.environ.get("VF_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is in requirements.lock
        sync_playwright = None
    require_service(
        executable is not None and sync_playwright is not None,
        "Chromium for the browser tests (apt-get install chromium, or VF_CHROMIUM=<path>)",
    )
    # Playwright's sync API runs an event loop on this thread; the test's own ORM calls are
    # synchronous and safe, so Django's async-context guard is lifted for this module only.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server, settings):
    from django.db import connection

    if connection.vendor == "sqlite":
        # The live server's threads share one in-memory SQLite connection (Django's test database):
        # two uploads at once would meet its table locks, which a file database in WAL mode has not.
        settings.VF_CONSOLE_PARALLEL_UPLOADS = 1
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    # The browser's log: every error it prints, and every answer of 404 or 5xx (a missing favicon,
    # script or style), checked at the end of each test.
    page.errors = []
    page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on(
        "response",
        lambda answer: (
            (answer.status == 404 or answer.status >= 500)
            and page.errors.append(f"{answer.status} {answer.url}")
        ),
    )
    yield page
    context.close()


def _assert_clean_log(page, expected: tuple[str, ...] = ()) -> None:
    """No error in the browser's log but the ``expected`` ones (a refused upload is logged)."""
    unexpected = [line for line in page.errors if not any(part in line for part in expected)]
    assert not unexpected, unexpected


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _pictures(folder: Path, colour, count: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for n in range(count):
        path = folder / f"{seed}-{n}.png"
        path.write_bytes(solid(colour, rng))
        paths.append(path)
    return paths


def _sign_in(page, user) -> None:
    page.goto("/")  # the front door sends a browser to the console's sign-in
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Tasks in Default").wait_for()


def _drop(page, zone_name: str, paths: list[Path]) -> None:
    """A real drop event on the zone, carrying the files in a DataTransfer as a person's drag would."""
    files = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in paths]
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name, { type: "image/png" }));
            }
            return transfer;
        }""",
        files,
    )
    zone = page.get_by_label(zone_name, exact=True)
    zone.dispatch_event("dragover", {"dataTransfer": transfer})
    zone.dispatch_event("drop", {"dataTransfer": transfer})


def _stored(page):
    """The upload list's lines of the files stored, as the person reads them ("name: stored")."""
    return page.get_by_role("listitem").filter(has_text=re.compile(r": stored$"))


def _write(update, seconds: float = 10.0) -> None:
    """Run ``update()`` (the test playing the worker), again while SQLite says "table is locked":
    the live server's threads reach Django's in-memory test database through SQLite's shared
    cache, where a write meeting a reader fails at once instead of waiting (not so on PostgreSQL
    or a file database in WAL mode)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with transaction.atomic():
                update()
            return
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _train(page, expected_version: int) -> None:
    with page.expect_navigation(timeout=180_000):
        page.get_by_role("button", name="Train").click()
    page.get_by_role("heading", name=f"version {expected_version}").wait_for()
    page.get_by_text("Status: TRAINED").wait_for(timeout=180_000)


def test_a_person_signs_in_uploads_trains_tries_and_switches_versions(
    page, live_server, transactional_db, fast_training, settings, tmp_path
):
    from playwright.sync_api import expect

    # Twice in CI's PostgreSQL pass the model answered red (0.57, then 0.503) for the blue picture
    # tried below: an under-trained model (nine images make one step an epoch). A budget that is
    # never reached, and 100 steps (over 40 seeds of a like task the fresh picture's own colour
    # scored as low as 0.66 at 12 steps and 0.85 at 30; the second failure came at 30). A failure
    # prints what the version trained.
    settings.VF_TRAIN_TIME_BUDGET = 300
    settings.VF_TRAIN_EPOCHS = 100
    user = UserFactory()
    _sign_in(page, user)

    page.get_by_label("Name").fill("Colours")
    page.get_by_label("Type").select_option("multi_class")
    page.get_by_role("button", name="Create task").click()
    page.get_by_role("heading", name="Colours").wait_for()
    for name in ("red", "blue"):
        page.get_by_label("New label").fill(name)
        page.get_by_role("button", name="Add label").click()
        expect(page.get_by_label(f"Drop images on {name}")).to_be_visible()

    # The page has the console's icon (no 404 for /favicon.ico in the log, checked at the end).
    icon = page.request.get("/favicon.ico")
    assert icon.status == 200 and "svg" in icon.headers["content-type"]

    reds = _pictures(tmp_path, COLOURS[0], PER_LABEL, seed=1)
    blues = _pictures(tmp_path, COLOURS[1], PER_LABEL, seed=2)
    page.get_by_label("Files for red").set_input_files([str(p) for p in reds])
    expect(_stored(page)).to_have_count(PER_LABEL, timeout=60_000)
    # The label's card counts its new images once they are stored, without a reload.
    expect(page.get_by_label("Drop images on red").get_by_text(f"{PER_LABEL} images")).to_be_visible()
    _drop(page, "Drop images on blue", blues)
    expect(_stored(page)).to_have_count(2 * PER_LABEL, timeout=60_000)
    expect(page.get_by_text(f"{PER_LABEL} images")).to_have_count(2)
    # The same file again is refused, and says why, next to its name.
    _drop(page, "Drop images on blue", blues[:1])
    expect(
        page.get_by_role("listitem").filter(
            has_text=f"{blues[0].name}: Training image with this content already exists"
        )
    ).to_be_visible()
    _shot(page, "task-upload")
    page.reload()
    expect(page.get_by_text(f"{PER_LABEL} images")).to_have_count(2)

    page.get_by_role("link", name="Images").click()
    expect(page.get_by_role("checkbox", name=re.compile("^Select image"))).to_have_count(2 * PER_LABEL)
    boxes = page.get_by_role("checkbox", name=re.compile("^Select image"))
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.get_by_label("With the selected").select_option("test")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("Mark as test: 2 image(s).")).to_be_visible()
    page.get_by_label("Test flag").select_option("1")  # htmx swaps the grid in place
    expect(page.get_by_role("checkbox", name=re.compile("^Select image"))).to_have_count(2)
    _shot(page, "images")
    page.get_by_role("link", name="Colours").click()

    _train(page, 1)
    expect(page.get_by_role("table", name="Confusion matrix")).to_be_visible()
    scores = re.compile(r"^red (\d+\.\d% ){3}")  # red's precision, recall and F1, as percents
    expect(page.get_by_text(re.compile(r"^Accuracy \d+\.\d%"))).to_be_visible()
    expect(page.get_by_role("row", name=scores)).to_be_visible()
    _shot(page, "version")

    page.get_by_role("link", name="Colours").click()
    page.get_by_label("Image to try", exact=True).set_input_files(
        str(_pictures(tmp_path, COLOURS[1], 1, seed=3)[0])
    )
    expect(page.get_by_text("Version 1 says")).to_be_visible(timeout=60_000)
    try:
        expect(page.get_by_text("Best label: blue")).to_be_visible()  # a blue picture, a learned model
    except AssertionError as exc:
        trained = ModelVersion.objects.get(task__name="Colours", version=1)
        raise AssertionError(f"{exc}\nversion 1 trained: {trained.metrics} split {trained.split}") from exc
    _shot(page, "try")

    _train(page, 2)  # a second version: it is deployed when trained
    page.get_by_role("link", name="Colours").click()
    page.get_by_role("button", name="Deploy version 1").click()
    expect(page.get_by_text("Version 1 is deployed.")).to_be_visible()
    task = Task.objects.get(name="Colours")
    assert task.production_version == 1

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    page.goto("/console/tasks/")
    page.get_by_role("heading", name="Sign in").wait_for()
    # The only errors the browser logged are the refused duplicate upload's answer.
    _assert_clean_log(page, expected=("status of 400", "status of 409"))


def test_a_person_draws_moves_relabels_and_deletes_boxes_with_mouse_and_keys(
    page, live_server, transactional_db, tmp_path
):
    from playwright.sync_api import expect

    user = UserFactory()
    _sign_in(page, user)
    page.get_by_label("Name").fill("Cars")
    page.get_by_label("Type").select_option("detection")
    page.get_by_role("button", name="Create task").click()
    for name in ("car", "sign"):
        page.get_by_label("New label").fill(name)
        page.get_by_role("button", name="Add label").click()
        expect(page.get_by_label(f"Drop images on {name}")).to_be_visible()
    paths = []
    for n in range(2):
        path = tmp_path / f"street{n}.png"
        path.write_bytes(solid(COLOURS[2 + n], np.random.default_rng(4 + n), size=96))
        paths.append(str(path))
    page.get_by_label("Files for new images").set_input_files(paths)
    expect(_stored(page)).to_have_count(2)

    page.get_by_role("link", name="Images").click()
    page.get_by_role("link", name="0 boxes").first.click()
    picture = page.get_by_role("img", name="Training image")
    picture.wait_for()
    area = picture.bounding_box()

    def at(fx, fy):
        return area["x"] + area["width"] * fx, area["y"] + area["height"] * fy

    # Draw a box with the mouse.
    page.mouse.move(*at(0.2, 0.2))
    page.mouse.down()
    page.mouse.move(*at(0.6, 0.7), steps=5)
    page.mouse.up()
    expect(page.get_by_text("Saved. 1 box saved.")).to_be_visible()
    (box,) = DetectionObject.objects.all()
    x1, y1, x2, y2 = box.data
    assert box.detection_label.name == "car"
    assert 15 <= x1 < x2 <= 62 and 15 <= y1 < y2 <= 72 and x2 - x1 > 30
    _shot(page, "boxes")

    # Move it by dragging its middle; key 2 relabels the selected box.
    page.mouse.move(*at(0.4, 0.45))
    page.mouse.down()
    page.mouse.move(*at(0.5, 0.55), steps=5)
    page.mouse.up()
    page.keyboard.press("2")
    expect(page.get_by_role("button", name="Box")).to_have_text("sign")
    # "Saving…" until both saves (the move, the new label) have answered; then the database has them.
    expect(page.get_by_text("Saved. 1 box saved.")).to_be_visible()
    box.refresh_from_db()
    assert box.data[0] > x1 + 5 and box.data[1] > y1 + 5  # moved right and down
    assert round(box.data[2] - box.data[0]) == round(x2 - x1)  # same size
    # The two saves reached the server in the order they were made (one after the other): the
    # relabel, made last, is what the database keeps.
    assert box.detection_label.name == "sign"

    page.reload()  # drawn boxes come back with the page
    expect(page.get_by_role("button", name="Box")).to_have_count(1)
    page.get_by_role("button", name="Box").click()
    page.keyboard.press("Delete")
    expect(page.get_by_text("Deleted. 0 boxes saved.")).to_be_visible()
    assert not DetectionObject.objects.exists()

    first = page.url
    page.keyboard.press("n")  # the next image
    page.wait_for_url(lambda url: url != first)
    assert page.url.endswith("/boxes/")
    _assert_clean_log(page)


def test_the_version_page_follows_a_training_live_and_shows_the_metrics_when_it_ends(
    page, live_server, transactional_db
):
    """htmx polls the progress partial: the numbers move without a reload, and the end reloads
    the page once to show the metrics (a worker's writes, made here by the test)."""
    from playwright.sync_api import expect

    from tests.factories import TaskFactory

    user = UserFactory()
    task = TaskFactory(workspace=user.owned_workspaces.get(), name="Live")
    version = ModelVersion.objects.create(
        workspace=task.workspace,
        task=task,
        version=1,
        train_status="IN_TRAINING",
        progress=5,
        epoch=1,
        loss=0.9,
    )
    _sign_in(page, user)
    page.goto(f"/console/tasks/{task.id}/versions/1/")
    expect(page.get_by_text("5% · epoch 1 · loss 0.9000")).to_be_visible()
    page.evaluate("window.notReloaded = true")

    _write(lambda: ModelVersion.objects.filter(pk=version.pk).update(progress=60, epoch=3, loss=0.25))
    expect(page.get_by_text("60% · epoch 3 · loss 0.2500")).to_be_visible(timeout=10_000)
    _write(
        lambda: ModelVersion.objects.filter(pk=version.pk).update(
            progress=70, epoch=None, loss=None, stage="probe: choosing the head by cross-validation"
        )
    )
    expect(page.get_by_text("70% · probe: choosing the head by cross-validation")).to_be_visible(
        timeout=10_000
    )
    assert page.evaluate("window.notReloaded") is True  # updated in place
    _shot(page, "progress")

    trained = {"accuracy": 1.0, "confusion_matrix": {"labels": ["a", "b"], "matrix": [[2, 0], [0, 2]]}}
    _write(
        lambda: ModelVersion.objects.filter(pk=version.pk).update(
            train_status="TRAINED", progress=100, metrics=trained
        )
    )
    expect(page.get_by_role("table", name="Confusion matrix")).to_be_visible(timeout=10_000)
    expect(page.get_by_text("Status: TRAINED")).to_be_visible()
    assert page.evaluate("window.notReloaded") is None  # the end reloaded the page once
    _assert_clean_log(page)
