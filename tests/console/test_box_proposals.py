"""The model's boxes in the box editor: a deployed detector's answer drawn as proposals, stored only
when a person accepts or adjusts one (the client's calls, then a real browser)."""

from __future__ import annotations

import re
import uuid

import pytest

from apps.detection.models import DetectionLabel, DetectionObject
from apps.images.services import training_image_ingest
from apps.inference import cache as model_cache
from apps.tasks.models import Task
from apps.training import artifacts
from apps.training.models import ModelVersion
from apps.workspaces.services import workspace_ensure_default
from ml.detection.detector import DetectConfig, DetectionExample, fit_detector
from tests.console.test_browser import (  # noqa: F401 - the fixtures are used by name
    _assert_clean_log,
    _shot,
    _sign_in,
    browser,
    page,
)
from tests.detection.scenes import png, scenes
from tests.factories import UserFactory

LABELS = [{"id": str(uuid.uuid4()), "name": "square"}, {"id": str(uuid.uuid4()), "name": "disc"}]
# The scenes of tests/ml/detection: squares and discs on noise, learnt in a few seconds at 96 px.
TINY = DetectConfig(input_size=96, epochs=8, batch_size=8, seed=3, num_threads=1)


@pytest.fixture(scope="module")
def shape_detector(tmp_path_factory) -> str:
    data = scenes(32, seed=11)
    examples = [
        DetectionExample(image=png(image), boxes=boxes, labels=labels) for image, boxes, labels in data
    ]
    out = tmp_path_factory.mktemp("shape-detector")
    fit_detector(examples, [i >= 24 for i in range(32)], LABELS, TINY, out_dir=out)
    return str(out)


@pytest.fixture(autouse=True)
def _model_dirs(settings, tmp_path):
    settings.VF_MODEL_CACHE_DIR = tmp_path / "model-cache"
    yield
    model_cache.model_cache().clear()


def _shapes_task(workspace, directory: str | None) -> Task:
    """A detection task whose labels are the detector's, with it deployed as version 1 (or none)."""
    task = Task.objects.create(workspace=workspace, owner=workspace.owner, name="shapes", type="detection")
    for label in LABELS:
        DetectionLabel.objects.create(id=label["id"], workspace=workspace, name=label["name"]).tasks.add(task)
    if directory is not None:
        version = ModelVersion.objects.create(
            workspace=workspace, task=task, version=1, train_status=ModelVersion.Status.TRAINED
        )
        version.artifact_path = artifacts.save_artifacts(version, directory)
        version.save(update_fields=["artifact_path"])
        Task.objects.filter(pk=task.pk).update(production_version=1, last_train_status="TRAINED")
        task.refresh_from_db()
    return task


def _scene_image(workspace, seed: int = 21):
    image, boxes, labels = scenes(1, seed=seed)[0]
    return training_image_ingest(workspace=workspace, data=png(image)), boxes, labels


def test_the_editor_asks_the_deployed_model_and_stores_nothing(console, workspace, shape_detector):
    task = _shapes_task(workspace, shape_detector)
    image, truth, _ = _scene_image(workspace)
    base = f"/console/tasks/{task.id}/images/{image.id}/boxes/"
    html = console.get(base).content.decode()
    assert f'data-guess-url="{base}guess/"' in html and "Show the model's boxes" in html

    answer = console.get(base + "guess/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["version"] == 1 and body["boxes"]
    assert {box["label"] for box in body["boxes"]} <= {label["id"] for label in LABELS}
    for box in body["boxes"]:
        x1, y1, x2, y2 = box["box"]
        assert 0 <= x1 < x2 <= image.img_width and 0 <= y1 < y2 <= image.img_height
        assert 0 < box["prob"] <= 1
    # The best proposal lies on a true object.
    best = body["boxes"][0]["box"]
    overlaps = [
        max(0, min(best[2], t[2]) - max(best[0], t[0])) * max(0, min(best[3], t[3]) - max(best[1], t[1]))
        for t in truth
    ]
    assert max(overlaps) > 0
    assert not DetectionObject.objects.exists()


def test_without_a_deployed_model_the_editor_offers_no_proposals(console, workspace):
    task = _shapes_task(workspace, None)
    image, _, _ = _scene_image(workspace)
    base = f"/console/tasks/{task.id}/images/{image.id}/boxes/"
    assert "data-guess-url" not in console.get(base).content.decode()
    answer = console.get(base + "guess/")
    assert answer.status_code == 409
    assert "trained" in answer.json()["error"]
    assert not DetectionObject.objects.exists()


def test_another_workspaces_image_has_no_proposals(other_console, workspace, shape_detector):
    task = _shapes_task(workspace, shape_detector)
    image, _, _ = _scene_image(workspace)
    answer = other_console.get(f"/console/tasks/{task.id}/images/{image.id}/boxes/guess/")
    assert answer.status_code == 404


@pytest.mark.browser
@pytest.mark.slow
def test_a_person_accepts_one_proposed_box_and_adjusts_another_in_a_real_browser(
    page,  # noqa: F811
    live_server,
    transactional_db,
    shape_detector,
):
    from playwright.sync_api import expect

    user = UserFactory()
    workspace = workspace_ensure_default(user=user)
    task = _shapes_task(workspace, shape_detector)
    picture, _, _ = scenes(1, seed=21, size=(288, 240))[0]  # three shapes, found by the tiny detector
    image = training_image_ingest(workspace=workspace, data=png(picture))
    _sign_in(page, user)
    page.goto(f"/console/tasks/{task.id}/images/{image.id}/boxes/")

    # An image without boxes opens with the model's boxes drawn as proposals; nothing is stored.
    proposed = page.get_by_role("button", name="Proposed box", exact=True)
    expect(proposed.first).to_be_visible()
    expect(page.get_by_text(re.compile(r"The model proposes \d+ box"))).to_be_visible()
    guess = page.evaluate("async (url) => (await fetch(url)).json()", page.url + "guess/")["boxes"]
    assert proposed.count() == len(guess) >= 2
    assert not DetectionObject.objects.exists()
    _shot(page, "box-proposals")
    guessed = [[round(v) for v in g["box"]] for g in guess]

    def free_centre():
        """The centre of a proposal that no other box covers there (a person clicks what they see)."""
        return page.evaluate(
            """() => {
                for (const el of document.querySelectorAll(".box.proposed")) {
                    const r = el.getBoundingClientRect();
                    const x = r.left + r.width / 2, y = r.top + r.height / 2;
                    if (el.contains(document.elementFromPoint(x, y))) return [x, y];
                }
                return null;
            }"""
        )

    # Select one and accept it with Enter: stored exactly as the model drew it.
    page.mouse.click(*free_centre())
    page.keyboard.press("Enter")
    expect(page.get_by_text("Saved. 1 box saved.")).to_be_visible()
    (accepted,) = DetectionObject.objects.all()
    assert [round(v) for v in accepted.data] in guessed
    assert str(accepted.detection_label_id) in {label["id"] for label in LABELS}

    # Drag another: stored where the person put it, at the model's size.
    x, y = free_centre()
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 24, y + 12, steps=5)
    page.mouse.up()
    expect(page.get_by_text("Saved. 2 boxes saved.")).to_be_visible()
    adjusted = DetectionObject.objects.exclude(pk=accepted.pk).get()
    box = [round(v) for v in adjusted.data]
    assert box not in guessed
    assert any(
        abs((b[2] - b[0]) - (box[2] - box[0])) <= 1 and abs((b[3] - b[1]) - (box[3] - box[1])) <= 1
        for b in guessed
    )

    # The rest stay proposals: dismissed with Delete, never stored; a reload shows the two boxes.
    rest = proposed.count()
    assert rest == len(guess) - 2
    page.mouse.click(*free_centre())
    page.keyboard.press("Delete")
    expect(page.get_by_text("Dismissed. 2 boxes saved.")).to_be_visible()
    assert DetectionObject.objects.count() == 2
    page.reload()
    expect(page.get_by_role("button", name="Box", exact=True)).to_have_count(2)
    expect(proposed).to_have_count(0)  # an image with boxes does not ask the model by itself
    _assert_clean_log(page)
