"""Console fixtures: a signed-in browser session (Django's test client) per user."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture
def console(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def other_console(other_user) -> Client:
    client = Client()
    client.force_login(other_user)
    return client
