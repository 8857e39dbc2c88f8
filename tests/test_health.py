"""Health statuses, readiness following PostgreSQL, reflection and graceful shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server.bootstrap import Application, build_application
from server.embedded import EmbeddedServers
from server.grpc_server import GrpcServer
from server.settings import Settings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def check(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return response.status


async def wait_for_status(channel: grpc.aio.Channel, service: str, wanted: int, within: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (status := await check(channel, service)) != wanted:
        assert asyncio.get_running_loop().time() < deadline, f"{service!r} stayed {status}"
        await asyncio.sleep(0.05)


async def test_every_name_is_serving(running_server: Any) -> None:
    names = ["", "liveness", "readiness"] + [s.service_name for s in running_server.app.servicers]
    assert "exodrive.v1.FleetService" in names
    assert "exodrive.v1.BookingService" in names
    for name in names:
        assert await check(running_server.channel, name) == SERVING, name


async def test_unknown_name_is_not_found(running_server: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await check(running_server.channel, "exodrive.v1.NoSuchService")
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


async def test_watch_streams_through_the_interceptors(running_server: Any) -> None:
    stub = health_pb2_grpc.HealthStub(running_server.channel)
    call = stub.Watch(health_pb2.HealthCheckRequest(service="readiness"), timeout=5)
    first = await call.read()
    assert isinstance(first, health_pb2.HealthCheckResponse)
    assert first.status == SERVING
    call.cancel()


async def test_reflection_lists_every_service(running_server: Any) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(running_server.channel)

    async def requests() -> Any:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = set()
    async for response in stub.ServerReflectionInfo(requests(), timeout=5):
        names = {service.name for service in response.list_services_response.service}
    assert {
        "exodrive.v1.FleetService",
        "exodrive.v1.BookingService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    } <= names


async def test_reflection_v1_answers_the_same(running_server: Any) -> None:
    # The v1 name is served by the v1alpha servicer: the messages are wire-identical.
    call = running_server.channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )(timeout=5)
    await call.write(
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="exodrive.v1.FleetService")
    )
    response = await call.read()
    await call.done_writing()
    assert response.file_descriptor_response.file_descriptor_proto


@pytest.mark.slow
async def test_readiness_follows_postgresql_without_restart(
    embedded_tmp_path: Path, settings: Settings
) -> None:
    # A private embedded PostgreSQL, so stopping it leaves the machine's server alone.
    async with EmbeddedServers(embedded_tmp_path / "data") as embedded:
        own = settings.model_copy(update={"database_url": embedded.database_url})
        app = await build_application(own)
        server = GrpcServer(app, readiness_interval_seconds=0.1)
        await server.start()
        channel = grpc.aio.insecure_channel(server.address)
        try:
            await wait_for_status(channel, "readiness", SERVING)
            await asyncio.to_thread(embedded.stop_postgres)
            await wait_for_status(channel, "readiness", NOT_SERVING)
            assert await check(channel, "") == NOT_SERVING
            assert await check(channel, "exodrive.v1.FleetService") == NOT_SERVING
            assert await check(channel, "liveness") == SERVING
            await asyncio.to_thread(embedded.start_postgres)
            await wait_for_status(channel, "readiness", SERVING)
            assert await check(channel, "") == SERVING
        finally:
            await channel.close()
            await server.stop(grace_seconds=0)


@dataclass
class Registration:
    service_name: str
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: object


@dataclass
class SlowApp:
    """The real application's interceptors and database ping, plus one slow RPC to drain."""

    app: Application
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    @property
    def servicers(self) -> Sequence[Registration]:
        async def sleep(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            self.started.set()
            await self.release.wait()
            return b"done:" + request

        handler = grpc.method_handlers_generic_handler(
            "test.Slow", {"Sleep": grpc.unary_unary_rpc_method_handler(sleep)}
        )
        return [
            Registration("test.Slow", lambda _s, server: server.add_generic_rpc_handlers((handler,)), None)
        ]

    @property
    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor[Any, Any]]:
        return self.app.interceptors

    async def ping_database(self) -> bool:
        return await self.app.ping_database()

    async def close(self) -> None:
        self.closed = True
        await self.app.close()


async def test_graceful_stop_drains_an_in_flight_call(migrated_settings: Settings) -> None:
    slow = SlowApp(await build_application(migrated_settings))
    server = GrpcServer(slow, grace_seconds=5)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    watcher = grpc.aio.insecure_channel(server.address)
    sleep = channel.unary_unary("/test.Slow/Sleep")
    try:
        in_flight = asyncio.ensure_future(sleep(b"x", timeout=10))
        await asyncio.wait_for(slow.started.wait(), 5)
        watch = health_pb2_grpc.HealthStub(watcher).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == SERVING

        stopping = asyncio.ensure_future(server.stop())
        assert (await asyncio.wait_for(watch.read(), 5)).status == NOT_SERVING
        # New calls are refused while the old one is still running.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await grpc.aio.insecure_channel(server.address).unary_unary("/test.Slow/Sleep")(b"y", timeout=2)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert not in_flight.done()

        slow.release.set()
        assert await in_flight == b"done:x"
        await asyncio.wait_for(stopping, 10)
        assert slow.closed
    finally:
        await channel.close()
        await watcher.close()
