import pytest
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

pytestmark = pytest.mark.django_db


@pytest.fixture
def low_rate(monkeypatch):
    # DRF binds the rates dict when the throttle class is created; patch that dict.
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "user", "3/min")
    cache.clear()
    yield
    cache.clear()


def test_a_token_over_its_rate_gets_a_429_that_says_when_to_retry(api, other_api, low_rate):
    for _ in range(3):
        assert api.get("/account/v2/user/").status_code == 200
    response = api.get("/account/v2/user/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Expected available in" in response.json()["detail"]
    # The limit is per token: another user is not affected.
    assert other_api.get("/account/v2/user/").status_code == 200
