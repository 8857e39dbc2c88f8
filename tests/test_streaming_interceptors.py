"""Every interceptor serves streams too: health Watch works through the whole chain of the app."""

from __future__ import annotations

import asyncio

from conftest import RunningServer
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_health_watch_streams_changes_through_every_interceptor(running_server: RunningServer) -> None:
    assert len(running_server.app.interceptors) >= 6  # the full edge chain is installed
    stub = health_pb2_grpc.HealthStub(running_server.channel)
    call = stub.Watch(
        health_pb2.HealthCheckRequest(service="liveness"), metadata=(("x-trace-id", "watch-trace-01"),)
    )
    first = await asyncio.wait_for(call.read(), 5)
    assert first.status == SERVING
    # A stream may never end, so its response metadata arrives as initial metadata.
    assert dict(await call.initial_metadata())["x-trace-id"] == "watch-trace-01"
    await running_server.server.health.servicer.set("liveness", NOT_SERVING)
    second = await asyncio.wait_for(call.read(), 5)
    assert second.status == NOT_SERVING
    await running_server.server.health.servicer.set("liveness", SERVING)
    third = await asyncio.wait_for(call.read(), 5)
    assert third.status == SERVING
    call.cancel()


async def test_health_check_needs_no_token_and_is_never_limited(running_server: RunningServer) -> None:
    stub = health_pb2_grpc.HealthStub(running_server.channel)
    for _ in range(3):
        response = await stub.Check(
            health_pb2.HealthCheckRequest(service="liveness"), metadata=(("authorization", "Bearer junk"),)
        )
        assert response.status == SERVING
    call = stub.Check(health_pb2.HealthCheckRequest(service="liveness"))
    await call
    trailing = dict(await call.trailing_metadata())
    assert "x-trace-id" in trailing
    assert "x-ratelimit-limit" not in trailing
