"""Quotas in a real browser (Debian's Chromium, as tests/console/test_browser.py drives it): the
task list shows use against each limit; an upload past the image quota is refused in the drop
zone with the reason, and the use reads the limit."""

from __future__ import annotations

import pytest

from apps.images.models import TrainingImage
from apps.quotas.models import WorkspaceQuota
from apps.workspaces.models import Workspace
from tests.console.test_browser import (  # noqa: F401 - the fixtures are used by name
    _assert_clean_log,
    _pictures,
    _shot,
    _sign_in,
    _stored,
    browser,
    page,
)
from tests.factories import UserFactory
from tests.pictures import COLOURS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _quota_row(page, title: str):  # noqa: F811 - the page of a test
    return (
        page.get_by_role("table", name="Quotas")
        .get_by_role("row")
        .filter(has=page.get_by_role("rowheader", name=title, exact=True))
    )


def test_a_person_sees_use_against_each_quota_and_an_upload_past_one_is_refused(
    page,  # noqa: F811
    live_server,
    transactional_db,
    tmp_path,
):
    from playwright.sync_api import expect

    user = UserFactory()
    workspace = Workspace.objects.get(owner=user, is_default=True)
    WorkspaceQuota.objects.create(workspace=workspace, images=3, stored_bytes=5_000_000_000)
    _sign_in(page, user)

    expect(_quota_row(page, "Training images")).to_contain_text("0")
    expect(_quota_row(page, "Training images").get_by_role("cell").nth(1)).to_have_text("3")
    expect(_quota_row(page, "Storage").get_by_role("cell").nth(1)).to_have_text("5.0 GB")
    expect(_quota_row(page, "Model versions kept").get_by_role("cell").nth(1)).to_have_text("unlimited")

    page.get_by_label("Name").fill("Colours")
    page.get_by_label("Type").select_option("multi_class")
    page.get_by_role("button", name="Create task").click()
    page.get_by_role("heading", name="Colours").wait_for()
    page.get_by_label("New label").fill("red")
    page.get_by_role("button", name="Add label").click()
    expect(page.get_by_label("Drop images on red")).to_be_visible()
    page.get_by_label("Files for red").set_input_files(
        [str(p) for p in _pictures(tmp_path, COLOURS[0], 4, 1)]
    )
    expect(_stored(page)).to_have_count(3, timeout=60_000)
    expect(page.get_by_text("quota of training images is reached: 3 of 3")).to_be_visible(timeout=60_000)
    assert TrainingImage.objects.filter(workspace=workspace).count() == 3

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    images = _quota_row(page, "Training images").get_by_role("cell")
    expect(images.nth(0)).to_have_text("3")
    expect(images.nth(2)).to_have_text("100.0%")
    stored = _quota_row(page, "Storage").get_by_role("cell")
    expect(stored.nth(0)).to_contain_text("kB")
    _shot(page, "quotas")
    _assert_clean_log(page, expected=("403",))
