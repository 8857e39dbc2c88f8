"""The fleet and booking RPCs end to end over real gRPC: proto in, proto out."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import grpc
import pytest
from conftest import RunningServer
from exodrive.v1 import booking_pb2, booking_pb2_grpc, fleet_pb2, fleet_pb2_grpc, money_pb2
from google.protobuf import field_mask_pb2
from google.type import date_pb2

from server.auth import mint_token
from server.settings import Settings
from services.principal import Role


def _auth(settings: Settings, role: Role, subject: str) -> list[tuple[str, str]]:
    assert settings.jwt_secret is not None
    return [
        (
            "authorization",
            f"Bearer {mint_token(settings.jwt_secret.get_secret_value(), role=role, subject=subject)}",
        )
    ]


def _date(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def _usd(cents: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="USD", amount_minor=cents)


async def test_a_car_is_created_listed_priced_and_booked_by_a_guest(
    running_server: RunningServer, migrated_settings: Settings
) -> None:
    fleet = fleet_pb2_grpc.FleetServiceStub(running_server.channel)
    bookings = booking_pb2_grpc.BookingServiceStub(running_server.channel)
    admin = _auth(migrated_settings, Role.ADMIN, f"admin-{uuid.uuid4().hex[:6]}")
    category = f"grpc-{uuid.uuid4().hex[:8]}"
    created = await fleet.CreateCar(
        fleet_pb2.CreateCarRequest(
            car=fleet_pb2.Car(
                slug=f"grpc-car-{uuid.uuid4().hex[:8]}",
                name="Lotus Emira",
                category=category,
                daily_rate=_usd(5000),
                deposit=_usd(100000),
                discount_percent=10,
                minimum_days=1,
                fees=[fleet_pb2.CarFee(name="Cleaning", amount=_usd(4000))],
                available=True,
            )
        ),
        metadata=admin,
    )
    car_id = created.car.car_id
    assert uuid.UUID(car_id)
    assert created.car.fees[0].amount.amount_minor == 4000

    updated = await fleet.UpdateCar(
        fleet_pb2.UpdateCarRequest(
            car_id=car_id,
            car=fleet_pb2.Car(featured=True),
            update_mask=field_mask_pb2.FieldMask(paths=["featured"]),
        ),
        metadata=admin,
    )
    assert updated.car.featured
    assert updated.car.name == "Lotus Emira"

    listed = await fleet.ListCars(fleet_pb2.ListCarsRequest(category=category))
    assert [car.car_id for car in listed.cars] == [car_id]
    assert listed.next_page_token == ""
    assert (await fleet.GetCar(fleet_pb2.GetCarRequest(car_id=car_id))).car.slug == created.car.slug

    first = date.today() + timedelta(days=90)
    start, end = _date(first), _date(first + timedelta(days=4))
    quote = (
        await fleet.QuotePrice(fleet_pb2.QuotePriceRequest(car_id=car_id, start_date=start, end_date=end))
    ).quote
    assert (quote.days, quote.total.amount_minor, quote.total.currency_code) == (4, 23760, "USD")

    made = await bookings.CreateBooking(
        booking_pb2.CreateBookingRequest(
            request_id=str(uuid.uuid4()),
            car_id=car_id,
            start_date=start,
            end_date=end,
            contact=booking_pb2.Contact(full_name="Ada Lovelace", email="ada@example.com"),
        )
    )
    booking_id = made.booking.booking_id
    assert made.booking.status == booking_pb2.BOOKING_STATUS_PENDING
    assert made.booking.price.total.amount_minor == 23760
    assert made.access_token
    assert made.access_token_expire_time.seconds > 0

    availability = await fleet.GetCarAvailability(
        fleet_pb2.GetCarAvailabilityRequest(car_id=car_id, start_date=start, end_date=end)
    )
    assert not availability.available
    assert [date(d.year, d.month, d.day) for d in availability.unavailable_dates] == [
        first + timedelta(days=i) for i in range(4)
    ]

    token = [("x-booking-token", made.access_token)]
    read = await bookings.GetBooking(booking_pb2.GetBookingRequest(booking_id=booking_id), metadata=token)
    assert read.booking.events[0].actor_type == booking_pb2.ACTOR_TYPE_GUEST
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bookings.GetBooking(booking_pb2.GetBookingRequest(booking_id=booking_id))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED

    confirmed = await bookings.UpdateBookingStatus(
        booking_pb2.UpdateBookingStatusRequest(
            booking_id=booking_id, status=booking_pb2.BOOKING_STATUS_CONFIRMED, reason="paid"
        ),
        metadata=admin,
    )
    assert confirmed.booking.status == booking_pb2.BOOKING_STATUS_CONFIRMED
    assert not confirmed.booking.HasField("hold_expire_time")

    page = await bookings.ListBookings(
        booking_pb2.ListBookingsRequest(car_id=car_id, status=booking_pb2.BOOKING_STATUS_CONFIRMED),
        metadata=admin,
    )
    assert [b.booking_id for b in page.bookings] == [booking_id]

    cancelled = await bookings.CancelBooking(
        booking_pb2.CancelBookingRequest(booking_id=booking_id, reason="changed plans"), metadata=token
    )
    assert cancelled.booking.status == booking_pb2.BOOKING_STATUS_CANCELLED
    assert cancelled.booking.events[-1].reason == "changed plans"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bookings.UpdateBookingStatus(
            booking_pb2.UpdateBookingStatusRequest(
                booking_id=booking_id, status=booking_pb2.BOOKING_STATUS_ACTIVE
            ),
            metadata=admin,
        )
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
