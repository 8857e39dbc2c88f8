"""`grpc.health.v1` statuses: liveness, and readiness that follows PostgreSQL.

Names served: `""` (the whole server, same as readiness), every exodrive service, `liveness` (the
process answers) and `readiness` (it can reach its database). A background task pings the database
about once a second and flips readiness both ways, so a database that comes back is noticed without a
restart. Shutdown sets every name NOT_SERVING for good, before the server stops accepting calls, and
ends every Watch stream once it has sent that final status: an open stream would otherwise hold the
server's stop for its whole grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

LIVENESS = "liveness"
READINESS = "readiness"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

log = logging.getLogger(__name__)

Ping = Callable[[], Awaitable[bool]]


class HealthStatuses(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """The `grpc.health.v1.Health` servicer: Check and Watch over a table of statuses by name.

    Unlike grpcio-health-checking's, Watch ends after shutdown once the caller has the final status.
    """

    def __init__(self) -> None:
        self._statuses: dict[str, int] = {"": SERVING}
        self._changed = asyncio.Condition()
        self._final = False

    async def Check(  # noqa: N802 - the generated method name
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        status = self._statuses.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service name")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(  # noqa: N802 - the generated method name
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        sent: int | None = None
        while True:
            async with self._changed:
                while self._status_of(request.service) == sent and not self._final:
                    await self._changed.wait()
                status, final = self._status_of(request.service), self._final
            if status != sent:
                # Written outside the lock: a slow reader must not hold back everyone's updates.
                await context.write(health_pb2.HealthCheckResponse(status=status))
                sent = status
            if final:
                return

    def _status_of(self, service: str) -> int:
        status: int = self._statuses.get(service, SERVICE_UNKNOWN)
        return status

    async def set(self, service: str, status: int) -> None:
        """Sets a name's status; ignored after shutdown, which is final."""
        async with self._changed:
            if not self._final:
                self._statuses[service] = status
                self._changed.notify_all()

    async def enter_graceful_shutdown(self) -> None:
        """Every name NOT_SERVING for good; each Watch sends that, then ends."""
        async with self._changed:
            self._final = True
            self._statuses = dict.fromkeys(self._statuses, NOT_SERVING)
            self._changed.notify_all()


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
        self.servicer = HealthStatuses()
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
