"""Bounded, failure-tolerant Redis calls for the edge (rate limiter and cache).

Each call gets the settings' timeout. After a failure Redis is skipped for a short pause, so a
Redis that is down or black-holed costs one timeout per pause, not one per request; the callers
then fall back (in-process limiter, cache bypass) and count it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from server.metrics import Metrics

T = TypeVar("T")

log = logging.getLogger(__name__)


class RedisUnavailableError(Exception):
    """Redis failed, timed out, or is being skipped after a recent failure."""


class RedisGuard:
    def __init__(
        self,
        component: str,
        metrics: Metrics,
        *,
        timeout_seconds: float,
        pause_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._component = component
        self._metrics = metrics
        self._timeout = timeout_seconds
        self._pause = pause_seconds
        self._clock = clock
        self._skip_until = 0.0
        # What the `exodrive_redis_up` gauge says; set only when it changes.
        self._up = True
        metrics.redis_up.labels(component).set(1)

    @property
    def healthy(self) -> bool:
        return self._clock() >= self._skip_until

    async def run(self, operation: Callable[[], Awaitable[T]]) -> T:
        if not self.healthy:
            raise RedisUnavailableError(self._component)
        try:
            async with asyncio.timeout(self._timeout):
                result = await operation()
        except (RedisError, OSError, TimeoutError) as error:
            self._skip_until = self._clock() + self._pause
            self._mark(up=False)
            self._metrics.redis_errors.labels(self._component).inc()
            log.warning(
                "redis unavailable", extra={"component": self._component, "error": type(error).__name__}
            )
            raise RedisUnavailableError(self._component) from error
        self._mark(up=True)
        return result

    @property
    def up(self) -> bool:
        """False from a failure until the next call that succeeds."""
        return self._up

    def _mark(self, *, up: bool) -> None:
        if up != self._up:
            self._up = up
            self._metrics.redis_up.labels(self._component).set(1 if up else 0)
