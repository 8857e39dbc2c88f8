"""`grpc.health.v1` statuses: liveness, and readiness that follows PostgreSQL.

Names served: `""` (the whole server, same as readiness), every exodrive service, `liveness` (the
process answers) and `readiness` (it can reach its database). A background task pings the database
about once a second and flips readiness both ways, so a database that comes back is noticed without a
restart. Shutdown sets every name NOT_SERVING for good, before the server stops accepting calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

LIVENESS = "liveness"
READINESS = "readiness"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

log = logging.getLogger(__name__)

Ping = Callable[[], Awaitable[bool]]


class Health:
    """Owns the health servicer and the readiness probe task."""

    def __init__(
        self,
        service_names: Sequence[str],
        ping: Ping,
        *,
        interval_seconds: float = 1.0,
        ping_timeout_seconds: float = 2.0,
    ) -> None:
        self.servicer = HealthServicer()
        self._service_names = list(service_names)
        self._ping = ping
        self._interval = interval_seconds
        self._ping_timeout = ping_timeout_seconds
        self._ready: bool | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return bool(self._ready)

    async def start(self) -> None:
        """Liveness SERVING at once; readiness from a first ping, then from the background probe."""
        await self.servicer.set(LIVENESS, SERVING)
        await self._apply(await self._probe())
        self._task = asyncio.create_task(self._run(), name="readiness-probe")

    async def _probe(self) -> bool:
        try:
            return await asyncio.wait_for(self._ping(), self._ping_timeout)
        except Exception:  # a failing ping only means "not ready"; the reason is logged
            log.warning("database ping failed", exc_info=True)
            return False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._apply(await self._probe())

    async def _apply(self, ready: bool) -> None:
        if ready == self._ready:
            return
        if self._ready is not None:
            log.warning("readiness changed", extra={"readiness": "SERVING" if ready else "NOT_SERVING"})
        self._ready = ready
        status = SERVING if ready else NOT_SERVING
        for name in ["", READINESS, *self._service_names]:
            await self.servicer.set(name, status)

    async def shutdown(self) -> None:
        """Every name NOT_SERVING, permanently: load balancers stop sending new calls."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.servicer.enter_graceful_shutdown()
