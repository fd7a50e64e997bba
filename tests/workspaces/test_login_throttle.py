"""Login brute force: failed logins are limited per username and per address (django-axes), on
the token endpoint and the admin login, and a forged X-Forwarded-For does not reset the count."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.core.clients import MSG_LOCKED_OUT, client_ip
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "/account/v2/token/"


def _token(anon, username, password, forwarded=None, address="127.0.0.1"):
    extra = {"REMOTE_ADDR": address}
    if forwarded:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return anon.post(TOKEN, {"username": username, "password": password}, format="json", **extra)


def test_twenty_wrong_passwords_with_forged_forwarded_headers_lock_the_account(anon, user, settings):
    settings.AXES_FAILURE_LIMIT = 10
    answers = [_token(anon, user.username, "wrong", forwarded=f"10.0.{n}.{n}").status_code for n in range(20)]
    assert answers[:9] == [400] * 9  # wrong password: the usual answer...
    assert set(answers[10:]) == {429}  # ...until the limit, then refused
    # The right password is refused too while the lock lasts, from any address.
    response = _token(anon, user.username, "pw-123456", address="127.0.0.2")
    assert response.status_code == 429
    assert response.json() == {"detail": MSG_LOCKED_OUT.format(minutes=15)}


def test_failures_from_one_address_lock_that_address_for_every_username(anon, user, settings):
    settings.AXES_FAILURE_LIMIT = 5
    for n in range(6):
        _token(anon, f"nobody-{n}", "guess", address="192.0.2.7")
    assert _token(anon, user.username, "pw-123456", address="192.0.2.7").status_code == 429
    # Another address is not locked: the right password works there.
    response = _token(anon, user.username, "pw-123456", address="192.0.2.8")
    assert response.status_code == 200 and "token" in response.json()


def test_the_admin_login_is_limited_the_same_way(settings):
    settings.AXES_FAILURE_LIMIT = 3
    admin = UserFactory(is_staff=True, is_superuser=True)
    browser = Client()
    for _ in range(3):
        response = browser.post("/admin/login/", {"username": admin.username, "password": "wrong"})
        assert response.status_code in (200, 429)
    response = browser.post(
        "/admin/login/?next=/admin/", {"username": admin.username, "password": "pw-123456"}
    )
    assert response.status_code == 429
    assert "_auth_user_id" not in browser.session


def test_forwarded_addresses_count_only_behind_configured_proxies(rf, settings):
    request = rf.get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.1, 192.0.2.1")
    settings.VF_NUM_PROXIES = 0
    assert client_ip(request) == "203.0.113.9"
    settings.VF_NUM_PROXIES = 1
    assert client_ip(request) == "192.0.2.1"  # what the one trusted proxy saw
    settings.VF_NUM_PROXIES = 2
    assert client_ip(request) == "198.51.100.1"
