"""Shutdown in order, in process: the gateway drains (closed listener, `Connection: close` on
kept-alive connections, in-flight requests finish), and health Watch streams end once they have
sent NOT_SERVING instead of holding the gRPC server's stop for its whole grace period."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from exodrive.v1 import fleet_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from test_gateway_upstream import ScriptedUpstream, build_server

from server.bootstrap import build_application
from server.gateway import GatewayServer, create_gateway_app
from server.grpc_server import GrpcServer
from server.health import HealthStatuses
from server.settings import Settings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


async def rest_of(watch: Any) -> list[int]:
    """The statuses a Watch stream still sends, until it ends."""
    statuses = []
    while (response := await asyncio.wait_for(watch.read(), 5)) is not grpc.aio.EOF:
        statuses.append(response.status)
    return statuses


async def test_watch_streams_end_after_not_serving_and_stop_does_not_wait_for_them(
    migrated_settings: Settings,
) -> None:
    server = GrpcServer(await build_application(migrated_settings), grace_seconds=10)
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        known = stub.Watch(health_pb2.HealthCheckRequest(service="readiness"))
        unknown = stub.Watch(health_pb2.HealthCheckRequest(service="exodrive.v1.NoSuchService"))
        assert (await known.read()).status == SERVING
        assert (await unknown.read()).status == SERVICE_UNKNOWN

        started = time.monotonic()
        await server.stop()
        took = time.monotonic() - started

        assert await rest_of(known) == [NOT_SERVING]
        assert await known.code() == grpc.StatusCode.OK
        assert await rest_of(unknown) == []  # nothing changed for it; it just ends
        assert await unknown.code() == grpc.StatusCode.OK
    assert took < 2, f"stop waited {took:.2f}s on open Watch streams (grace 10 s)"


async def test_health_statuses_after_shutdown_are_final_and_a_new_watch_ends_at_once() -> None:
    statuses = HealthStatuses()
    await statuses.set("liveness", SERVING)
    await statuses.enter_graceful_shutdown()
    await statuses.set("liveness", SERVING)  # ignored: shutdown is final

    class Context:
        written: list[int]

        def __init__(self) -> None:
            self.written = []

        async def write(self, response: health_pb2.HealthCheckResponse) -> None:
            self.written.append(response.status)

    context = Context()
    request = health_pb2.HealthCheckRequest(service="liveness")
    await asyncio.wait_for(statuses.Watch(request, context), 1)
    assert context.written == [NOT_SERVING]
    assert (await statuses.Check(request, context)).status == NOT_SERVING


class Stack:
    def __init__(self) -> None:
        self.script = ScriptedUpstream()
        self.server = build_server(self.script, health.aio.HealthServicer())
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.gateway = GatewayServer(create_gateway_app(Settings(), f"127.0.0.1:{port}"))


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    stack = Stack()
    await stack.server.start()
    await stack.gateway.start()
    try:
        yield stack
    finally:
        await stack.gateway.stop()
        await stack.server.stop(None)


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[bytes, bytes]:
    """One HTTP/1.1 request on a kept-alive connection: (head, body)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: gateway\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert length is not None, head
    return head, await reader.readexactly(int(length.group(1)))


async def test_drain_finishes_in_flight_requests_and_closes_kept_alive_connections(stack: Stack) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(request: Any, context: Any) -> fleet_pb2.GetCarResponse:
        entered.set()
        await release.wait()
        return fleet_pb2.GetCarResponse(car=fleet_pb2.Car(car_id="slow"))

    stack.script.answers["GetCar"] = slow
    idle = await asyncio.open_connection(stack.gateway.host, stack.gateway.port)
    head, _ = await exchange(*idle, "/healthz")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"connection: close" not in head.lower()

    busy = await asyncio.open_connection(stack.gateway.host, stack.gateway.port)
    in_flight = asyncio.create_task(exchange(*busy, "/v1/cars/a"))
    await asyncio.wait_for(entered.wait(), 5)

    draining = asyncio.create_task(stack.gateway.drain(timeout=10))
    await asyncio.sleep(0.05)
    # No new connections...
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(stack.gateway.host, stack.gateway.port)
    # ...but a request arriving on a kept-alive one is answered, and told the connection closes.
    head, body = await exchange(*idle, "/healthz")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"connection: close" in head.lower()
    assert await idle[0].read() == b""  # closed by the server after that answer, not cut before it

    assert not draining.done()  # the slow request is still in flight
    release.set()
    head, body = await asyncio.wait_for(in_flight, 5)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"connection: close" in head.lower()
    assert b'"carId":"slow"' in body
    await asyncio.wait_for(draining, 5)
    assert stack.gateway.open_connections == 0
    for _, writer in (idle, busy):
        writer.close()


async def test_drain_leaves_idle_connections_after_a_short_quiet_window(stack: Stack) -> None:
    idle = await asyncio.open_connection(stack.gateway.host, stack.gateway.port)
    await exchange(*idle, "/healthz")
    await asyncio.sleep(0.6)  # idle past the window already
    started = time.monotonic()
    await stack.gateway.drain(timeout=10)
    assert time.monotonic() - started < 0.5  # nothing in flight: no reason to wait
    assert stack.gateway.open_connections == 1  # left for stop(), which closes it
    await stack.gateway.stop()
    assert await asyncio.wait_for(idle[0].read(), 5) == b""
    idle[1].close()
