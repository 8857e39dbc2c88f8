"""PostgreSQL stopped or hung: calls answer UNAVAILABLE with RetryInfo in bounded time, never the
driver's text, and work again once it is back, without a restart. A statement's own error stays
INTERNAL. Each test runs its own embedded PostgreSQL, so stopping it leaves the shared one alone."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import grpc
import psutil
import pytest
from edge_harness import status_details
from exodrive.v1 import booking_pb2, booking_pb2_grpc, fleet_pb2, fleet_pb2_grpc
from fleet_helpers import ADMIN, car_draft
from google.rpc import error_details_pb2
from google.type import date_pb2
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from server import schema
from server.bootstrap import Application, build_application
from server.embedded import EmbeddedServers
from server.grpc_server import GrpcServer
from server.settings import Settings
from services.errors import DomainError, Reason
from services.storage.failures import is_connection_failure

pytestmark = pytest.mark.slow


@dataclass
class Outage:
    embedded: EmbeddedServers
    app: Application
    channel: grpc.aio.Channel
    car_id: str

    def postgres_processes(self) -> list[psutil.Process]:
        pid = int((self.embedded.pgdata / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    @contextmanager
    def hung(self) -> Iterator[None]:
        """Every PostgreSQL process stopped (SIGSTOP): sockets stay open, nothing answers."""
        processes = self.postgres_processes()
        for process in processes:
            os.kill(process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for process in processes:
                os.kill(process.pid, signal.SIGCONT)


@pytest.fixture
async def outage(embedded_tmp_path: Path, settings: Settings) -> AsyncIterator[Outage]:
    async with EmbeddedServers(embedded_tmp_path / "data") as embedded:
        await asyncio.to_thread(schema.upgrade, embedded.database_url)
        own = settings.model_copy(
            update={
                "database_url": embedded.database_url,
                "redis_key_prefix": f"{settings.redis_key_prefix}-outage-{uuid.uuid4().hex[:6]}",
                "rate_limit_enabled": False,
                "db_pool_size": 2,
                "db_connect_timeout_seconds": 1.0,
                "db_pool_timeout_seconds": 1.0,
            }
        )
        app = await build_application(own)
        car = await app.fleet.create_car(ADMIN, car_draft())
        server = GrpcServer(app, host="127.0.0.1", port=0, readiness_interval_seconds=0.2)
        await server.start()
        channel = grpc.aio.insecure_channel(server.address)
        try:
            yield Outage(embedded, app, channel, str(car.id))
        finally:
            await channel.close()
            await server.stop(grace_seconds=0)


def gdate(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def span(offset: int) -> tuple[date_pb2.Date, date_pb2.Date]:
    start = date.today() + timedelta(days=offset)
    return gdate(start), gdate(start + timedelta(days=2))


async def quote(outage: Outage, offset: int) -> fleet_pb2.QuotePriceResponse:
    start, end = span(offset)
    stub = fleet_pb2_grpc.FleetServiceStub(outage.channel)
    return await stub.QuotePrice(
        fleet_pb2.QuotePriceRequest(car_id=outage.car_id, start_date=start, end_date=end), timeout=15
    )


async def create_booking(outage: Outage, offset: int) -> booking_pb2.CreateBookingResponse:
    start, end = span(offset)
    stub = booking_pb2_grpc.BookingServiceStub(outage.channel)
    return await stub.CreateBooking(
        booking_pb2.CreateBookingRequest(
            request_id=str(uuid.uuid4()),
            car_id=outage.car_id,
            start_date=start,
            end_date=end,
            contact=booking_pb2.Contact(full_name="Ada Lovelace", email="ada@example.com"),
        ),
        timeout=15,
    )


def assert_unavailable(error: grpc.aio.AioRpcError) -> None:
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    details = status_details(error)
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert [packed.Unpack(info) for packed in details.details if packed.Is(info.DESCRIPTOR)] == [True]
    assert [packed.Unpack(retry) for packed in details.details if packed.Is(retry.DESCRIPTOR)] == [True]
    assert info.reason == "UNAVAILABLE"
    assert info.metadata["dependency"] == "database"
    assert retry.retry_delay.seconds == 1
    assert error.details() == "the database is unavailable; retry shortly"
    assert details.message == error.details()


async def test_a_stopped_database_answers_unavailable_then_recovers(outage: Outage) -> None:
    assert (await quote(outage, 30)).quote.days == 2
    await asyncio.to_thread(outage.embedded.stop_postgres)
    try:
        for call in (quote(outage, 31), create_booking(outage, 32)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert_unavailable(caught.value)
    finally:
        await asyncio.to_thread(outage.embedded.start_postgres)
    assert (await quote(outage, 33)).quote.days == 2
    made = await create_booking(outage, 34)
    assert made.booking.status == booking_pb2.BOOKING_STATUS_PENDING


async def test_a_hung_database_fails_in_bounded_time_then_recovers(outage: Outage) -> None:
    # Warm the pool: the hung server's pooled connections must not hang calls either.
    assert (await quote(outage, 40)).quote.days == 2
    with outage.hung():
        began = time.monotonic()
        # More concurrent calls than the pool holds (2 + 2 overflow): none may hang or leak a slot.
        calls = [quote(outage, 41 + i) for i in range(6)] + [create_booking(outage, 50)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        elapsed = time.monotonic() - began
        for result in results:
            assert isinstance(result, grpc.aio.AioRpcError), result
            assert_unavailable(result)
        # Acquisition is bounded by pool (1 s) + connect (1 s) timeouts: far under the gateway's 10 s.
        assert elapsed < 5.0, elapsed
    for offset in range(60, 66):  # every pool slot works again
        assert (await quote(outage, offset)).quote.days == 2
    made = await create_booking(outage, 70)
    assert made.booking.status == booking_pb2.BOOKING_STATUS_PENDING


async def test_a_statement_error_is_not_an_outage(outage: Outage) -> None:
    with pytest.raises(ProgrammingError) as caught:
        async with outage.app.uow(ADMIN) as uow:
            await uow.connection.execute(text("SELECT * FROM no_such_table"))
    assert not is_connection_failure(caught.value)
    # And the connection it used is fine for the next call.
    assert (await quote(outage, 80)).quote.days == 2


def test_only_connection_failures_count() -> None:
    import psycopg

    assert is_connection_failure(psycopg.OperationalError("connection refused"))
    assert is_connection_failure(TimeoutError())
    assert not is_connection_failure(psycopg.errors.UndefinedTable("no table"))
    assert not is_connection_failure(psycopg.errors.QueryCanceled("statement timeout"))
    assert not is_connection_failure(DomainError(Reason.INTERNAL, "x"))
