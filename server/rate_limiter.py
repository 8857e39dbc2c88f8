"""Sliding-window rate limiting: one atomic Lua script on Redis's clock, shared by every process,
with an in-process limiter of the same tiers when Redis is down or slow.

The window is a sorted set of admitted calls scored by Redis time in microseconds. Only admitted
calls are added, so refused calls never extend a refusal. `reset` and `retry_after` are the time
until the oldest admitted call leaves the window, which is exactly when a slot frees up.
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count

import redis.asyncio

from server.metrics import Metrics
from server.redis_guard import RedisGuard, RedisUnavailableError

# KEYS[1] the window; ARGV: window in microseconds, limit, a member unique to this call.
SLIDING_WINDOW = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local allowed = 0
if used < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  used = used + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = 0
if oldest[2] then wait = tonumber(oldest[2]) + window - now end
return {allowed, math.max(0, limit - used), wait}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until the oldest counted call leaves the window (a slot frees up).
    reset_seconds: float
    # True when the in-process fallback decided because Redis failed.
    fallback: bool = False

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds, rounded up, so waiting that long is always enough."""
        return max(1, math.ceil(self.reset_seconds))


class LocalRateLimiter:
    """The same sliding window in one process, used while Redis is unavailable.

    Keeps at most `max_keys` windows (least recently used dropped) so memory stays bounded.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._windows: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str, limit: int, window_seconds: float) -> Decision:
        now = self._clock()
        window = self._windows.pop(key, None) or deque()
        self._windows[key] = window
        if len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)
        while window and window[0] <= now - window_seconds:
            window.popleft()
        allowed = len(window) < limit
        if allowed:
            window.append(now)
        reset = window[0] + window_seconds - now if window else 0.0
        return Decision(allowed, limit, max(0, limit - len(window)), reset, fallback=True)


class RateLimiter:
    """Redis sliding window, falling back to `LocalRateLimiter` (counted) when Redis fails."""

    def __init__(
        self,
        client: redis.asyncio.Redis | None,
        guard: RedisGuard,
        metrics: Metrics,
        local: LocalRateLimiter,
    ) -> None:
        # Without a client every decision is local (and counted as a fallback).
        self._script = client.register_script(SLIDING_WINDOW) if client is not None else None
        self._guard = guard
        self._metrics = metrics
        self._local = local
        # Members must be unique per admitted call even within one Redis microsecond.
        self._member_prefix = os.urandom(6).hex()
        self._sequence = count()

    @property
    def redis_healthy(self) -> bool:
        return self._guard.healthy

    async def hit(self, key: str, limit: int, window_seconds: float) -> Decision:
        member = f"{self._member_prefix}{next(self._sequence)}"
        window_us = int(window_seconds * 1_000_000)
        script = self._script
        try:
            if script is None:
                raise RedisUnavailableError("no redis client")
            result = await self._guard.run(lambda: script(keys=[key], args=[window_us, limit, member]))
        except RedisUnavailableError:
            self._metrics.rate_limit_fallbacks.inc()
            return self._local.hit(key, limit, window_seconds)
        allowed, remaining, wait_us = (int(part) for part in result)
        return Decision(bool(allowed), limit, remaining, wait_us / 1_000_000)
