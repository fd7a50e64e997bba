"""API tokens on the Members page in a real browser (Debian's Chromium, as tests/console/
test_browser.py drives it): create a read-only token with an expiry, copy its key shown once, use
it against the API, see it listed (without the key), revoke it, and the key is refused."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import requests

from apps.tokens.models import ScopedToken
from tests.console.test_browser import (  # noqa: F401 - the fixtures are used by name
    _assert_clean_log,
    _shot,
    _sign_in,
    browser,
    page,
)
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser]


def test_the_owner_creates_uses_and_revokes_a_scoped_token(page, live_server, transactional_db):  # noqa: F811
    from playwright.sync_api import expect

    user = UserFactory()
    _sign_in(page, user)
    page.goto("/console/workspace/members/")
    page.get_by_role("heading", name="API tokens").wait_for()
    expect(page.get_by_text("No API tokens yet.")).to_be_visible()

    expires_on = date.today() + timedelta(days=30)
    page.get_by_label("Token name").fill("Shop camera")
    page.get_by_label("Scope").select_option("read-only")
    page.get_by_label("Expires on").fill(expires_on.isoformat())
    page.get_by_role("button", name="Create token").click()
    shown = page.get_by_role("status", name="The new token's key")
    expect(shown).to_contain_text("Copy its key now")
    key = shown.locator("code").inner_text().strip()
    assert key.startswith("vfs_")
    row = page.get_by_role("row").filter(has_text="Shop camera")
    expect(row).to_contain_text("read-only")
    expect(row).to_contain_text(key[:12])
    expect(row).to_contain_text(expires_on.isoformat())
    _shot(page, "members-tokens")

    api = f"{live_server.url}/recognition/v2/task/"
    headers = {"Authorization": f"Token {key}"}
    assert requests.get(api, headers=headers, timeout=30).status_code == 200
    refused = requests.post(api, json={"name": "x"}, headers=headers, timeout=30)
    assert refused.status_code == 403
    assert "read-only" in refused.json()["detail"]

    # A reload lists the token, used now, and no longer shows its key.
    page.goto("/console/workspace/members/")
    expect(page.get_by_role("status", name="The new token's key")).to_have_count(0)
    assert key not in page.content()
    row = page.get_by_role("row").filter(has_text="Shop camera")
    expect(row.get_by_role("cell", name="never")).to_have_count(0)  # expires and last used are set

    row.get_by_role("button", name="Revoke Shop camera").click()
    expect(page.get_by_text("No API tokens yet.")).to_be_visible()
    assert not ScopedToken.objects.exists()
    assert requests.get(api, headers=headers, timeout=30).status_code == 401
    _assert_clean_log(page)
