"""An ACTIVE booking holds its days (the car is with the customer): over real gRPC, in the
database's own constraint, and COMPLETED still frees them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta

import grpc
import psycopg
import pytest
from conftest import RunningServer
from database_urls import admin_conninfo
from exodrive.v1 import booking_pb2, booking_pb2_grpc, fleet_pb2, fleet_pb2_grpc
from grpc_calls import Metadata, auth, create_car, error_info, gdate, serve_unlimited
from psycopg import sql
from raw_rows import insert_booking, insert_car_and_customer

from server import schema
from server.settings import Settings
from services.model import HOLDING_STATUSES, BookingStatus
from services.principal import Role
from services.storage.engine import with_database
from services.storage.tables import BOOKINGS_NO_OVERLAP


@pytest.fixture
async def server(migrated_settings: Settings) -> AsyncIterator[RunningServer]:
    async with serve_unlimited(migrated_settings) as running:
        yield running


async def book(
    bookings: booking_pb2_grpc.BookingServiceStub, customer: Metadata, car_id: str, start: date, end: date
) -> booking_pb2.Booking:
    made = await bookings.CreateBooking(
        booking_pb2.CreateBookingRequest(
            request_id=str(uuid.uuid4()),
            car_id=car_id,
            start_date=gdate(start),
            end_date=gdate(end),
            contact=booking_pb2.Contact(
                full_name="Ada Lovelace", email=f"ada-{uuid.uuid4().hex[:8]}@example.com"
            ),
        ),
        metadata=customer,
    )
    return made.booking


async def move(
    bookings: booking_pb2_grpc.BookingServiceStub,
    admin: Metadata,
    booking_id: str,
    status: booking_pb2.BookingStatus.ValueType,
) -> None:
    moved = await bookings.UpdateBookingStatus(
        booking_pb2.UpdateBookingStatusRequest(booking_id=booking_id, status=status, reason="test"),
        metadata=admin,
    )
    assert moved.booking.status == status


async def availability(
    fleet: fleet_pb2_grpc.FleetServiceStub, car_id: str, start: date, end: date
) -> fleet_pb2.GetCarAvailabilityResponse:
    return await fleet.GetCarAvailability(
        fleet_pb2.GetCarAvailabilityRequest(car_id=car_id, start_date=gdate(start), end_date=gdate(end))
    )


async def test_an_active_booking_keeps_its_days_until_completed(
    server: RunningServer, migrated_settings: Settings
) -> None:
    fleet = fleet_pb2_grpc.FleetServiceStub(server.channel)
    bookings = booking_pb2_grpc.BookingServiceStub(server.channel)
    admin = auth(migrated_settings, Role.ADMIN)
    car_id = await create_car(fleet, admin)
    first = date.today() + timedelta(days=40)
    held = [first + timedelta(days=offset) for offset in range(4)]

    booking = await book(
        bookings, auth(migrated_settings, Role.CUSTOMER), car_id, first, first + timedelta(days=4)
    )
    await move(bookings, admin, booking.booking_id, booking_pb2.BOOKING_STATUS_CONFIRMED)
    await move(bookings, admin, booking.booking_id, booking_pb2.BOOKING_STATUS_ACTIVE)

    seen = await availability(fleet, car_id, first, first + timedelta(days=4))
    assert seen.available is False
    assert [date(d.year, d.month, d.day) for d in seen.unavailable_dates] == held

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await book(
            bookings,
            auth(migrated_settings, Role.CUSTOMER),
            car_id,
            first + timedelta(days=1),
            first + timedelta(days=3),
        )
    assert caught.value.code() is grpc.StatusCode.ABORTED
    info = error_info(caught.value)
    assert info.reason == "CAR_UNAVAILABLE"
    assert info.metadata["car_id"] == car_id
    # Nothing was written for the refused request.
    listed = await bookings.ListBookings(booking_pb2.ListBookingsRequest(car_id=car_id), metadata=admin)
    assert [b.booking_id for b in listed.bookings] == [booking.booking_id]

    # The return day is free: the next customer may pick the car up on the end date.
    after = await book(
        bookings,
        auth(migrated_settings, Role.CUSTOMER),
        car_id,
        first + timedelta(days=4),
        first + timedelta(days=6),
    )
    assert after.status == booking_pb2.BOOKING_STATUS_PENDING

    # Returned: COMPLETED releases the days.
    await move(bookings, admin, booking.booking_id, booking_pb2.BOOKING_STATUS_COMPLETED)
    freed = await availability(fleet, car_id, first, first + timedelta(days=4))
    assert freed.available is True
    assert list(freed.unavailable_dates) == []
    again = await book(
        bookings,
        auth(migrated_settings, Role.CUSTOMER),
        car_id,
        first + timedelta(days=1),
        first + timedelta(days=3),
    )
    assert again.status == booking_pb2.BOOKING_STATUS_PENDING


def test_the_database_refuses_a_raw_insert_overlapping_an_active_booking(migrated_settings: Settings) -> None:
    assert migrated_settings.database_url is not None
    with psycopg.connect(migrated_settings.database_url) as conn:
        car = insert_car_and_customer(conn)
        insert_booking(conn, car, "2032-05-01", "2032-05-05", "ACTIVE")
        conn.commit()
        for status in ("PENDING", "CONFIRMED", "ACTIVE"):
            with pytest.raises(psycopg.errors.ExclusionViolation) as refused:
                insert_booking(conn, car, "2032-05-02", "2032-05-04", status)
            assert refused.value.diag.constraint_name == BOOKINGS_NO_OVERLAP
            conn.rollback()
        # Released statuses never hold, and the return day is free.
        insert_booking(conn, car, "2032-05-02", "2032-05-04", "CANCELLED")
        insert_booking(conn, car, "2032-05-02", "2032-05-04", "COMPLETED")
        insert_booking(conn, car, "2032-05-05", "2032-05-06", "PENDING")
        conn.commit()
        # COMPLETED frees the days: a later booking over them is accepted.
        conn.execute(
            "UPDATE bookings SET status = 'COMPLETED' WHERE car_id = %s AND status = 'ACTIVE'", (car.car_id,)
        )
        insert_booking(conn, car, "2032-05-01", "2032-05-05", "CONFIRMED")
        conn.commit()


def test_the_constraint_names_exactly_the_holding_statuses(migrated_settings: Settings) -> None:
    """The migrated constraint and services/model.py HOLDING_STATUSES are one definition."""
    assert migrated_settings.database_url is not None
    with psycopg.connect(migrated_settings.database_url) as conn:
        row = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s", (BOOKINGS_NO_OVERLAP,)
        ).fetchone()
    assert row is not None
    definition = str(row[0])
    named = {status for status in BookingStatus if f"'{status.value}'" in definition}
    assert named == HOLDING_STATUSES == {BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.ACTIVE}


@pytest.fixture
def database_at_0004(settings: Settings) -> Iterator[str]:
    """A new database migrated up to the revision before ACTIVE held days, dropped afterwards."""
    assert settings.database_url is not None
    admin = admin_conninfo(settings.database_url)
    name = f"exodrive_0005_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(admin, name)
    schema.upgrade(url, "0004_inbox_search")
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_upgrade_stops_on_rows_that_already_overlap_an_active_booking(database_at_0004: str) -> None:
    with psycopg.connect(database_at_0004) as conn:
        car = insert_car_and_customer(conn)
        # Written under the old rule: the PENDING booking took days of the ACTIVE one.
        insert_booking(conn, car, "2032-05-01", "2032-05-05", "ACTIVE")
        insert_booking(conn, car, "2032-05-03", "2032-05-04", "PENDING")
        conn.commit()
        active_id, pending_id = (
            row[0] for row in conn.execute("SELECT id FROM bookings ORDER BY start_date").fetchall()
        )

    with pytest.raises(RuntimeError) as stopped:
        schema.upgrade(database_at_0004)
    assert f"{active_id} (ACTIVE) / {pending_id}" in str(stopped.value)
    assert schema.current(database_at_0004) == "0004_inbox_search"

    with psycopg.connect(database_at_0004) as conn:
        conn.execute("UPDATE bookings SET status = 'CANCELLED' WHERE id = %s", (pending_id,))
        conn.commit()
    schema.upgrade(database_at_0004)
    assert schema.current(database_at_0004) == schema.head() == "0005_active_bookings_hold_days"
    schema.downgrade(database_at_0004, "0004_inbox_search")
    assert schema.current(database_at_0004) == "0004_inbox_search"
