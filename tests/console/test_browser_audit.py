"""The audit log in a real browser (Debian's Chromium, as tests/console/test_browser.py drives it):
the owner adds a member, issues and revokes an API token, and reads who did what on the workspace's
audit log, newest first; a member has no link to it and is refused the page."""

from __future__ import annotations

import pytest

from tests.console.test_browser import (  # noqa: F401 - the fixtures are used by name
    _assert_clean_log,
    _shot,
    _sign_in,
    browser,
    page,
)
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser]


def test_the_owner_reads_who_did_what_on_the_audit_log(page, live_server, transactional_db):  # noqa: F811
    from playwright.sync_api import expect

    owner, member = UserFactory(), UserFactory()
    _sign_in(page, owner)
    page.goto("/console/workspace/members/")
    page.get_by_label("Username or e-mail").fill(member.username)
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("button", name=f"Remove {member.username}")).to_be_visible()

    page.get_by_label("Token name").fill("Line camera")
    page.get_by_label("Scope").select_option("classify-only")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("status", name="The new token's key")).to_be_visible()
    page.get_by_role("button", name="Revoke Line camera").click()
    expect(page.get_by_role("button", name="Revoke Line camera")).to_have_count(0)

    page.get_by_role("link", name="Audit log").click()
    page.get_by_role("heading", name="Audit log of Default").wait_for()
    rows = page.locator("#audit-log tbody tr")
    expect(rows).to_have_count(3)
    # Newest first: the revoke, the token's creation, the membership; each names who and to whom.
    expect(rows.nth(0)).to_contain_text("Token revoked")
    expect(rows.nth(0)).to_contain_text("Line camera")
    expect(rows.nth(1)).to_contain_text("Token created")
    expect(rows.nth(2)).to_contain_text("Member added")
    expect(rows.nth(2)).to_contain_text(member.username)
    for n in range(3):
        expect(rows.nth(n)).to_contain_text(owner.username)
    _shot(page, "audit-log")
    _assert_clean_log(page)

    # A member of the owner's workspace sees its members but not its log.
    page.context.clear_cookies()
    _sign_in(page, member)
    page.get_by_label("Workspace").select_option(label=f"Default ({owner.username})")
    page.get_by_role("heading", name="Tasks in Default").wait_for()
    page.goto("/console/workspace/members/")
    expect(page.get_by_role("button", name=f"Remove {member.username}")).to_have_count(0)
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    assert page.goto("/console/workspace/audit-log/").status in (403, 404)
