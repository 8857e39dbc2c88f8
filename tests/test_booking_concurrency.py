"""No double booking under concurrency: many calls, several OS processes, one database."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from multiprocessing import resource_tracker

import pytest
from fleet_helpers import ANON, booking_request, from_today, make_app, make_car
from sqlalchemy import func, select

from server.bootstrap import build_application
from server.settings import Settings
from services.booking import BookingRequest
from services.errors import DomainError
from services.storage.tables import bookings

pytestmark = pytest.mark.slow

PROCESSES = 2
CALLS_PER_PROCESS = 25


@pytest.fixture(scope="module", autouse=True)
def _resource_tracker_ends_with_this_module() -> Iterator[None]:
    """The spawn pools start multiprocessing's resource tracker, a process that would otherwise
    outlive the run and save its coverage data after the run has combined it (a stray file)."""
    yield
    resource_tracker._resource_tracker._stop()


async def _create_all(settings_json: str, requests: list[BookingRequest]) -> list[str]:
    """Runs every request at once in this process, on this process's own engine."""
    app = await build_application(Settings.model_validate_json(settings_json))
    try:

        async def one(request: BookingRequest) -> str:
            try:
                await app.bookings.create(ANON, request)
            except DomainError as error:
                return error.reason.value
            return "CREATED"

        return list(await asyncio.gather(*(one(request) for request in requests)))
    finally:
        await app.close()


def _process_main(settings_json: str, requests: list[BookingRequest]) -> list[str]:
    return asyncio.run(_create_all(settings_json, requests))


def _run_in_processes(settings: Settings, batches: list[list[BookingRequest]]) -> Counter[str]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(batches)) as pool:
        results = pool.starmap(_process_main, [(settings.model_dump_json(), batch) for batch in batches])
        # Let the workers exit on their own (not SIGTERMed by the pool's exit), finishing what
        # they write at exit, coverage data included.
        pool.close()
        pool.join()
    return Counter(outcome for result in results for outcome in result)


async def _active_count(app, car_id: uuid.UUID) -> int:  # type: ignore[no-untyped-def]
    async with app.engine.connect() as conn:
        count: int = await conn.scalar(
            select(func.count()).where(
                bookings.c.car_id == car_id, bookings.c.status.in_(("PENDING", "CONFIRMED"))
            )
        )
    return count


async def test_fifty_overlapping_bookings_from_two_processes_leave_exactly_one(
    migrated_settings: Settings,
) -> None:
    app, _, _ = await make_app(migrated_settings)
    try:
        car = await make_car(app)
        # Every range holds day +12; starts and lengths vary so the rows differ.
        start = from_today(30)
        requests = [
            booking_request(car.id, start + timedelta(days=i % 3), start + timedelta(days=3 + i % 2))
            for i in range(PROCESSES * CALLS_PER_PROCESS)
        ]
        batches = [requests[i::PROCESSES] for i in range(PROCESSES)]
        outcomes = await asyncio.to_thread(_run_in_processes, migrated_settings, batches)
        assert outcomes == Counter({"CREATED": 1, "CAR_UNAVAILABLE": PROCESSES * CALLS_PER_PROCESS - 1})
        assert await _active_count(app, car.id) == 1
    finally:
        await app.close()


async def test_one_request_id_sent_fifty_times_from_two_processes_books_once(
    migrated_settings: Settings,
) -> None:
    app, _, _ = await make_app(migrated_settings)
    try:
        car = await make_car(app)
        start = from_today(40)
        request = booking_request(car.id, start, start + timedelta(days=2))
        batches = [[request] * CALLS_PER_PROCESS for _ in range(PROCESSES)]
        outcomes = await asyncio.to_thread(_run_in_processes, migrated_settings, batches)
        assert outcomes == Counter({"CREATED": PROCESSES * CALLS_PER_PROCESS})
        async with app.engine.connect() as conn:
            rows = await conn.scalar(select(func.count()).where(bookings.c.request_id == request.request_id))
        assert rows == 1
    finally:
        await app.close()
