"""A loopback receiver, allowed as a webhook target by the test's own setting (the default refuses
loopback and private addresses)."""

from __future__ import annotations

import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver(settings):
    settings.VF_WEBHOOKS_ALLOWED_HOSTS = ["127.0.0.1"]
    server = Receiver()
    yield server
    server.close()
