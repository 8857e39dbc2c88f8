"""In-process periodic work: the expiry of PENDING bookings whose hold period has passed.

Every server process runs it; that is safe because the expiry is one UPDATE of due rows in a
transaction, so two processes expiring at once cancel each booking once. A failing run is logged
and retried at the next tick; it never stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class PeriodicJob:
    """Runs `work` every `interval_seconds` in a background task until `stop()`."""

    def __init__(self, name: str, work: Callable[[], Awaitable[int]], interval_seconds: float) -> None:
        self.name = name
        self._work = work
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def run_once(self) -> int:
        try:
            done = await self._work()
        except Exception:  # logged with its stack; the next tick tries again
            log.exception("periodic job failed", extra={"job": self.name})
            return 0
        finally:
            self.runs += 1
        if done:
            log.info("periodic job done", extra={"job": self.name, "handled": done})
        return done

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def hold_expiry_job(
    expire_overdue: Callable[[], Awaitable[int]], interval_seconds: float = 30.0
) -> PeriodicJob:
    """The job cancelling PENDING bookings past their hold (BookingService.expire_overdue)."""
    return PeriodicJob("hold-expiry", expire_overdue, interval_seconds)
