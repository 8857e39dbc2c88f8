"""The typed client: errors from google.rpc.Status, trace ids, retries of UNAVAILABLE, deadlines."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from exodrive.v1 import fleet_pb2, fleet_pb2_grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from clients import (
    NO_RETRY,
    Conflict,
    DeadlineExceeded,
    ExoDriveClient,
    ExoDriveSyncClient,
    InvalidArgument,
    NotFound,
    RateLimited,
    RetryPolicy,
    Unavailable,
)
from clients.errors import error_from_status

FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, rng=random.Random(7))


async def test_not_found_is_typed_with_reason_and_the_sent_trace_id(running_server: Any) -> None:
    client = ExoDriveClient(channel=running_server.channel)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with pytest.raises(NotFound) as failure:
        await client.fleet.get_car(fleet_pb2.GetCarRequest(car_id=str(uuid.uuid4())), trace_id=trace)
    assert failure.value.reason == "CAR_NOT_FOUND"
    assert failure.value.code == grpc.StatusCode.NOT_FOUND
    assert failure.value.trace_id == trace


async def test_invalid_id_names_the_field(running_server: Any) -> None:
    client = ExoDriveClient(channel=running_server.channel)
    with pytest.raises(InvalidArgument) as failure:
        await client.fleet.get_car(fleet_pb2.GetCarRequest(car_id="not-a-uuid"))
    assert failure.value.reason == "VALIDATION_ERROR"
    assert [v.field for v in failure.value.field_violations] == ["car_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", failure.value.trace_id)


async def test_success_reads_the_trace_id_back(running_server: Any) -> None:
    client = ExoDriveClient(channel=running_server.channel)
    reply = await client.fleet.list_cars.with_reply(fleet_pb2.ListCarsRequest(), trace_id="a" * 32)
    assert reply.trace_id == "a" * 32
    assert reply.metadata["x-trace-id"] == "a" * 32
    generated = await client.fleet.list_cars.with_reply(fleet_pb2.ListCarsRequest())
    assert re.fullmatch(r"[0-9a-f]{32}", generated.trace_id)


async def test_sync_client_works_against_the_real_server(running_server: Any) -> None:
    def call() -> str:
        with ExoDriveSyncClient(running_server.address) as client:
            with pytest.raises(NotFound) as failure:
                client.fleet.get_car(fleet_pb2.GetCarRequest(car_id=str(uuid.uuid4())), trace_id="b" * 32)
            assert failure.value.reason == "CAR_NOT_FOUND"
            return client.fleet.list_cars.with_reply(fleet_pb2.ListCarsRequest(), trace_id="c" * 32).trace_id

    assert await asyncio.to_thread(call) == "c" * 32


class FlakyFleet(fleet_pb2_grpc.FleetServiceServicer):
    """Fails with UNAVAILABLE `failures` times per method, then answers; or sleeps."""

    def __init__(self, failures: int = 0, delay: float = 0.0) -> None:
        self.failures = failures
        self.delay = delay
        self.calls: dict[str, int] = {}
        self.metadata: list[dict[str, str]] = []

    async def _answer(self, name: str, context: Any) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        self.metadata.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.calls[name] <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "try again")

    async def GetCar(self, request: Any, context: Any) -> fleet_pb2.GetCarResponse:
        await self._answer("GetCar", context)
        return fleet_pb2.GetCarResponse(car=fleet_pb2.Car(car_id=request.car_id))

    async def CreateCar(self, request: Any, context: Any) -> fleet_pb2.CreateCarResponse:
        await self._answer("CreateCar", context)
        return fleet_pb2.CreateCarResponse()


async def serve_fake(servicer: FlakyFleet) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    fleet_pb2_grpc.add_FleetServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[FlakyFleet, str]]:
    servicer = FlakyFleet(failures=2)
    server, address = await serve_fake(servicer)
    yield servicer, address
    await server.stop(0)


async def test_idempotent_call_is_retried_through_unavailable(flaky: tuple[FlakyFleet, str]) -> None:
    servicer, address = flaky
    async with ExoDriveClient(address, token="tok", retry=FAST_RETRY) as client:
        car = await client.fleet.get_car(fleet_pb2.GetCarRequest(car_id="x"), trace_id="d" * 32)
    assert car.car.car_id == "x"
    assert servicer.calls["GetCar"] == 3
    # Every attempt carries the same trace id and the bearer token.
    assert {m["x-trace-id"] for m in servicer.metadata} == {"d" * 32}
    assert {m["authorization"] for m in servicer.metadata} == {"Bearer tok"}


async def test_non_idempotent_call_is_not_retried(flaky: tuple[FlakyFleet, str]) -> None:
    servicer, address = flaky
    async with ExoDriveClient(address, retry=FAST_RETRY) as client:
        with pytest.raises(Unavailable):
            await client.fleet.create_car(fleet_pb2.CreateCarRequest())
    assert servicer.calls["CreateCar"] == 1


async def test_retries_stop_after_max_attempts(flaky: tuple[FlakyFleet, str]) -> None:
    servicer, address = flaky
    async with ExoDriveClient(address, retry=NO_RETRY) as client:
        with pytest.raises(Unavailable) as failure:
            await client.fleet.get_car(fleet_pb2.GetCarRequest(car_id="x"))
    assert servicer.calls["GetCar"] == 1
    assert failure.value.reason == "UNAVAILABLE"


async def test_deadline_is_enforced() -> None:
    servicer = FlakyFleet(delay=1.0)
    server, address = await serve_fake(servicer)
    try:
        async with ExoDriveClient(address, default_timeout=0.2) as client:
            started = asyncio.get_running_loop().time()
            with pytest.raises(DeadlineExceeded):
                await client.fleet.get_car(fleet_pb2.GetCarRequest(car_id="x"))
            assert asyncio.get_running_loop().time() - started < 0.9
    finally:
        await server.stop(0)


def test_backoff_grows_with_jitter_and_honours_retry_info() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, rng=random.Random(1))
    delays = [policy.backoff(attempt) for attempt in range(1, 8) for _ in range(20)]
    assert all(0 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 100  # jittered
    assert max(policy.backoff(1) for _ in range(50)) <= 0.1
    assert policy.backoff(1, retry_after=3.0) == 3.0


def test_error_details_are_decoded() -> None:
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="slow down")
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(
            reason="RATE_LIMITED", domain="exodrive.com", metadata={"trace_id": "e" * 32}
        )
    )
    status.details.add().Pack(
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2, nanos=500_000_000))
    )
    error = error_from_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "slow down",
        [("grpc-status-details-bin", status.SerializeToString())],
    )
    assert isinstance(error, RateLimited)
    assert (error.reason, error.trace_id, error.retry_after) == ("RATE_LIMITED", "e" * 32, 2.5)

    conflict = error_from_status(grpc.StatusCode.ABORTED, "dates taken", [("x-trace-id", "f" * 32)])
    assert isinstance(conflict, Conflict)
    assert (conflict.reason, conflict.trace_id, conflict.message) == ("ABORTED", "f" * 32, "dates taken")
    garbled = error_from_status(grpc.StatusCode.INTERNAL, None, [("grpc-status-details-bin", b"\xff\xff")])
    assert garbled.message == "INTERNAL"
