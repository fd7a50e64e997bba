"""Request rates per token and per anonymous address, counted cheaply.

DRF's throttles keep a list of every request's timestamp in the cache and rewrite the whole list on
each request: at the default 6000/min that is up to 6000 floats pickled, sent and stored per call.
These keep one integer per caller and window instead (``INCR`` and ``EXPIRE`` in one round trip on
Redis). The window is fixed, so a caller may spend its allowance at the end of one window and again
at the start of the next (at most twice the rate over any span of one window); the rates here are
abuse limits, not billing, and that bound is what docs/operations.md states.
"""

from __future__ import annotations

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework import throttling


class CountingRateThrottle(throttling.SimpleRateThrottle):
    """``SimpleRateThrottle`` with a counter per fixed window instead of a timestamp list."""

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_end = (window + 1) * self.duration
        return self._count(f"{self.key}:{window}") <= self.num_requests

    def _count(self, key: str) -> int:
        """This request's number in the window: the counter after adding one."""
        timeout = self.duration + 1
        backend = caches[DEFAULT_CACHE_ALIAS]  # DRF's ``self.cache`` is the proxy in front of it
        if self.cache is throttling.default_cache and isinstance(backend, RedisCache):
            key = backend.make_and_validate_key(key)
            client = backend._cache.get_client(key, write=True)
            with client.pipeline(transaction=False) as pipe:
                count, _ = pipe.incr(key).expire(key, timeout).execute()
            return int(count)
        if self.cache.add(key, 1, timeout):
            return 1
        try:
            return self.cache.incr(key)
        except ValueError:  # expired between add and incr: this request opens a new count
            self.cache.set(key, 1, timeout)
            return 1

    def wait(self):
        return max(self.window_end - self.now, 0.0)


class UserRateThrottle(CountingRateThrottle, throttling.UserRateThrottle):
    """Per token (authenticated user), rate ``user``."""


class AnonRateThrottle(CountingRateThrottle, throttling.AnonRateThrottle):
    """Per address of anonymous callers, rate ``anon``."""
