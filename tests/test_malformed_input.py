"""Every RPC, sent malformed through real gRPC: INVALID_ARGUMENT naming the field, never INTERNAL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import grpc
import pytest
from conftest import RunningServer
from edge_harness import status_details
from exodrive.v1 import booking_pb2, booking_pb2_grpc, fleet_pb2, fleet_pb2_grpc, money_pb2
from fleet_helpers import ADMIN, car_draft
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from google.type import date_pb2

from server.auth import mint_token
from server.settings import Settings
from services.principal import Role

SOME_ID = str(uuid.uuid4())


def d(year: int, month: int, day: int) -> date_pb2.Date:
    return date_pb2.Date(year=year, month=month, day=day)


def on(value: date) -> date_pb2.Date:
    return d(value.year, value.month, value.day)


# Near enough to be bookable (a rental starts at most max_advance_days ahead).
_SOON = date.today() + timedelta(days=60)
GOOD_START, GOOD_END = on(_SOON), on(_SOON + timedelta(days=2))
CONTACT = booking_pb2.Contact(full_name="Ada Lovelace", email="ada@example.com", phone="+1 555 0100")
CAR = fleet_pb2.Car(
    slug="malformed-car",
    name="Car",
    daily_rate=money_pb2.Money(currency_code="USD", amount_minor=5000),
    deposit=money_pb2.Money(currency_code="USD", amount_minor=0),
    minimum_days=1,
)


def car(**changes: Any) -> fleet_pb2.Car:
    copy = fleet_pb2.Car()
    copy.CopyFrom(CAR)
    for name, value in changes.items():
        if isinstance(value, list):
            getattr(copy, name).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(copy, name).CopyFrom(value)
        else:
            setattr(copy, name, value)
    return copy


def money(cents: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="USD", amount_minor=cents)


# (method, request builder taking a real car id, expected field)
Case = tuple[str, Callable[[str], Any], str]

CASES: list[Case] = [
    ("ListCars", lambda _: fleet_pb2.ListCarsRequest(page_size=-1), "page_size"),
    ("ListCars", lambda _: fleet_pb2.ListCarsRequest(page_size=101), "page_size"),
    ("ListCars", lambda _: fleet_pb2.ListCarsRequest(page_size=2_000_000_000), "page_size"),
    ("ListCars", lambda _: fleet_pb2.ListCarsRequest(page_token="not a token!"), "page_token"),
    ("GetCar", lambda _: fleet_pb2.GetCarRequest(), "car_id"),
    ("GetCar", lambda _: fleet_pb2.GetCarRequest(car_id="42"), "car_id"),
    (
        "GetCarAvailability",
        lambda _: fleet_pb2.GetCarAvailabilityRequest(car_id="x", start_date=GOOD_START, end_date=GOOD_END),
        "car_id",
    ),
    (
        "GetCarAvailability",
        lambda c: fleet_pb2.GetCarAvailabilityRequest(car_id=c, end_date=GOOD_END),
        "start_date",
    ),
    (
        "GetCarAvailability",
        lambda c: fleet_pb2.GetCarAvailabilityRequest(car_id=c, start_date=d(2031, 13, 1), end_date=GOOD_END),
        "start_date",
    ),
    (
        "GetCarAvailability",
        lambda c: fleet_pb2.GetCarAvailabilityRequest(car_id=c, start_date=GOOD_END, end_date=GOOD_START),
        "end_date",
    ),
    (
        "QuotePrice",
        lambda _: fleet_pb2.QuotePriceRequest(car_id="nope", start_date=GOOD_START, end_date=GOOD_END),
        "car_id",
    ),
    ("QuotePrice", lambda c: fleet_pb2.QuotePriceRequest(car_id=c, start_date=GOOD_START), "end_date"),
    (
        "QuotePrice",
        lambda c: fleet_pb2.QuotePriceRequest(car_id=c, start_date=GOOD_START, end_date=d(2031, 2, 30)),
        "end_date",
    ),
    (
        "QuotePrice",
        lambda c: fleet_pb2.QuotePriceRequest(car_id=c, start_date=GOOD_END, end_date=GOOD_START),
        "end_date",
    ),
    (
        "QuotePrice",
        lambda c: fleet_pb2.QuotePriceRequest(car_id=c, start_date=d(2001, 1, 1), end_date=d(2001, 1, 3)),
        "start_date",
    ),
    ("CreateCar", lambda _: fleet_pb2.CreateCarRequest(), "car"),
    (
        "CreateCar",
        lambda _: fleet_pb2.CreateCarRequest(car=car(daily_rate=money(-1))),
        "car.daily_rate.amount_minor",
    ),
    ("CreateCar", lambda _: fleet_pb2.CreateCarRequest(car=car(slug="Bad Slug")), "car.slug"),
    (
        "CreateCar",
        lambda _: fleet_pb2.CreateCarRequest(car=car(fees=[fleet_pb2.CarFee(name="Fee", amount=money(-5))])),
        "car.fees[0].amount.amount_minor",
    ),
    (
        "CreateCar",
        lambda _: fleet_pb2.CreateCarRequest(
            car=car(deposit=money_pb2.Money(currency_code="EUR", amount_minor=1))
        ),
        "car.deposit.currency_code",
    ),
    ("UpdateCar", lambda _: fleet_pb2.UpdateCarRequest(car_id="1", car=CAR), "car_id"),
    ("UpdateCar", lambda c: fleet_pb2.UpdateCarRequest(car_id=c), "car"),
    (
        "UpdateCar",
        lambda c: fleet_pb2.UpdateCarRequest(
            car_id=c, car=CAR, update_mask=field_mask_pb2.FieldMask(paths=["car_id"])
        ),
        "update_mask",
    ),
    (
        "UpdateCar",
        lambda c: fleet_pb2.UpdateCarRequest(
            car_id=c, car=car(deposit=money(-100)), update_mask=field_mask_pb2.FieldMask(paths=["deposit"])
        ),
        "car.deposit.amount_minor",
    ),
    (
        "CreateBooking",
        lambda c: booking_pb2.CreateBookingRequest(
            car_id=c, start_date=GOOD_START, end_date=GOOD_END, contact=CONTACT
        ),
        "request_id",
    ),
    (
        "CreateBooking",
        lambda _: booking_pb2.CreateBookingRequest(
            request_id=str(uuid.uuid4()),
            car_id="car",
            start_date=GOOD_START,
            end_date=GOOD_END,
            contact=CONTACT,
        ),
        "car_id",
    ),
    (
        "CreateBooking",
        lambda c: booking_pb2.CreateBookingRequest(
            request_id=str(uuid.uuid4()), car_id=c, end_date=GOOD_END, contact=CONTACT
        ),
        "start_date",
    ),
    (
        "CreateBooking",
        lambda c: booking_pb2.CreateBookingRequest(
            request_id=str(uuid.uuid4()), car_id=c, start_date=d(0, 3, 1), end_date=GOOD_END, contact=CONTACT
        ),
        "start_date",
    ),
    (
        "CreateBooking",
        lambda c: booking_pb2.CreateBookingRequest(
            request_id=str(uuid.uuid4()), car_id=c, start_date=GOOD_END, end_date=GOOD_START, contact=CONTACT
        ),
        "end_date",
    ),
    (
        "CreateBooking",
        lambda c: booking_pb2.CreateBookingRequest(
            request_id=str(uuid.uuid4()),
            car_id=c,
            start_date=GOOD_START,
            end_date=GOOD_END,
            contact=booking_pb2.Contact(full_name="Ada", email="ada-at-example"),
        ),
        "contact.email",
    ),
    ("GetBooking", lambda _: booking_pb2.GetBookingRequest(booking_id="b"), "booking_id"),
    ("GetBooking", lambda _: booking_pb2.GetBookingRequest(), "booking_id"),
    ("ListBookings", lambda _: booking_pb2.ListBookingsRequest(page_size=1000), "page_size"),
    ("ListBookings", lambda _: booking_pb2.ListBookingsRequest(car_id="c"), "car_id"),
    ("ListBookings", lambda _: booking_pb2.ListBookingsRequest(status=99), "status"),  # type: ignore[arg-type]
    ("ListBookings", lambda _: booking_pb2.ListBookingsRequest(page_token="@@"), "page_token"),
    ("CancelBooking", lambda _: booking_pb2.CancelBookingRequest(booking_id="x"), "booking_id"),
    (
        "UpdateBookingStatus",
        lambda _: booking_pb2.UpdateBookingStatusRequest(
            booking_id="x", status=booking_pb2.BOOKING_STATUS_CONFIRMED
        ),
        "booking_id",
    ),
    ("UpdateBookingStatus", lambda _: booking_pb2.UpdateBookingStatusRequest(booking_id=SOME_ID), "status"),
]


def _method(channel: grpc.aio.Channel, name: str) -> Any:
    stub: Any = (
        booking_pb2_grpc.BookingServiceStub(channel)
        if hasattr(booking_pb2_grpc.BookingServiceStub(channel), name)
        else fleet_pb2_grpc.FleetServiceStub(channel)
    )
    return getattr(stub, name)


@pytest.mark.parametrize(
    ("method", "build", "field"), CASES, ids=[f"{m}-{f}-{i}" for i, (m, _, f) in enumerate(CASES)]
)
async def test_malformed_request_is_invalid_argument_naming_the_field(
    running_server: RunningServer,
    migrated_settings: Settings,
    method: str,
    build: Callable[[str], Any],
    field: str,
) -> None:
    real_car = await running_server.app.fleet.create_car(ADMIN, car_draft())
    assert migrated_settings.jwt_secret is not None
    # A fresh admin subject per call, so no rate-limit budget is shared between cases.
    token = mint_token(
        migrated_settings.jwt_secret.get_secret_value(), role=Role.ADMIN, subject=f"sweep-{uuid.uuid4().hex}"
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _method(running_server.channel, method)(
            build(str(real_car.id)), metadata=[("authorization", f"Bearer {token}")], timeout=10
        )
    error = caught.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
    violations = []
    for detail in status_details(error).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(v.field for v in bad_request.field_violations)
    assert field in violations, violations


async def test_a_guest_booking_without_contact_names_contact(running_server: RunningServer) -> None:
    real_car = await running_server.app.fleet.create_car(ADMIN, car_draft())
    stub = booking_pb2_grpc.BookingServiceStub(running_server.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateBooking(
            booking_pb2.CreateBookingRequest(
                request_id=str(uuid.uuid4()),
                car_id=str(real_car.id),
                start_date=GOOD_START,
                end_date=GOOD_END,
            ),
            timeout=10,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "contact" in caught.value.details()
