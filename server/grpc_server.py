"""Builds, starts and stops the `grpc.aio` server of an application.

The server carries the application's interceptors and servicers, `grpc.health.v1` (see
server/health.py) and server reflection (v1alpha, plus the same servicer under v1 for clients that
ask for it). Stopping is graceful: health goes NOT_SERVING, new calls are refused, in-flight calls
get `shutdown_grace_seconds` to finish, then the application closes its pools.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

from server.health import Health

log = logging.getLogger(__name__)

REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


class Registration(Protocol):
    """One servicer of the application and the generated function that adds it to a server."""

    @property
    def service_name(self) -> str: ...
    @property
    def add_to_server(self) -> Callable[[Any, grpc.aio.Server], None]: ...
    @property
    def servicer(self) -> object: ...


class Servable(Protocol):
    """What the server needs of an application (server/bootstrap.py's `Application`)."""

    @property
    def servicers(self) -> Sequence[Registration]: ...
    @property
    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]: ...
    async def ping_database(self) -> bool: ...
    async def close(self) -> None: ...


class GrpcServer:
    """One listening `grpc.aio` server. `start()` returns the bound port (useful with port 0)."""

    def __init__(
        self,
        app: Servable,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        grace_seconds: float = 10.0,
        reuse_port: bool = False,
        readiness_interval_seconds: float = 1.0,
        loopback_port: bool = False,
    ) -> None:
        self.app = app
        self._address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        # A second, private port on loopback for the gateway of this process: the shared port
        # (SO_REUSEPORT) would hand its connection to any worker, not necessarily this one.
        self._loopback_port = loopback_port
        self.loopback_address: str | None = None
        self._grace = grace_seconds
        # gRPC enables SO_REUSEPORT by default; a lone server turns it off so that a port already
        # in use is an error instead of two unrelated servers silently sharing it.
        options = [("grpc.so_reuseport", 1 if reuse_port else 0)]
        self._server = grpc.aio.server(interceptors=list(app.interceptors), options=options)
        names = [registration.service_name for registration in app.servicers]
        self.health = Health(names, app.ping_database, interval_seconds=readiness_interval_seconds)
        for registration in app.servicers:
            registration.add_to_server(registration.servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self._server)
        self._add_reflection(names)
        self.port = 0
        self._stopped = False

    def _add_reflection(self, names: Sequence[str]) -> None:
        health_name: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        served = [*names, health_name, reflection.SERVICE_NAME, REFLECTION_V1]
        servicer = ReflectionServicer(served)
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, self._server)
        # v1 messages are wire-identical to v1alpha, so one servicer answers both names.
        v1 = grpc.method_handlers_generic_handler(
            REFLECTION_V1,
            {
                "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                    servicer.ServerReflectionInfo,
                    request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                    response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
                )
            },
        )
        self._server.add_generic_rpc_handlers((v1,))

    @property
    def address(self) -> str:
        host = self._address.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    async def start(self) -> int:
        self.port = self._server.add_insecure_port(self._address)
        if self.port == 0:
            raise OSError(f"cannot listen on {self._address}")
        if self._loopback_port:
            self.loopback_address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        await self._server.start()
        await self.health.start()
        log.info("gRPC server listening", extra={"address": self.address})
        return self.port

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()

    async def announce_shutdown(self) -> None:
        """Every health name NOT_SERVING for good, while calls are still served: probes and load
        balancers stop sending new work before anything stops (stop() does it too)."""
        await self.health.shutdown()

    async def stop(self, grace_seconds: float | None = None) -> None:
        """NOT_SERVING, refuse new calls, drain in-flight ones within the grace, close the app."""
        if self._stopped:
            return
        self._stopped = True
        await self.health.shutdown()
        grace = self._grace if grace_seconds is None else grace_seconds
        await self._server.stop(grace)
        await self.app.close()
        log.info("gRPC server stopped", extra={"address": self.address})
