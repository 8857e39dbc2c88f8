"""Hidden and out-of-service cars answer consistently (not bookable, so not free and not priced),
and hidden cars are listed to staff only: never to anyone else, from the cache or not."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta

import grpc
import pytest
from conftest import RunningServer
from edge_harness import metadata_of_call
from exodrive.v1 import booking_pb2, booking_pb2_grpc, fleet_pb2, fleet_pb2_grpc
from google.protobuf import field_mask_pb2
from grpc_calls import Metadata, auth, create_car, error_info, gdate, serve_unlimited

from server.settings import Settings
from services.principal import Role


@pytest.fixture
async def server(migrated_settings: Settings) -> AsyncIterator[RunningServer]:
    async with serve_unlimited(migrated_settings) as running:
        yield running


async def listed(
    fleet: fleet_pb2_grpc.FleetServiceStub,
    category: str,
    metadata: Metadata | None = None,
    *,
    show_hidden: bool = False,
) -> tuple[list[str], str]:
    call = fleet.ListCars(
        fleet_pb2.ListCarsRequest(category=category, show_hidden=show_hidden), metadata=metadata or []
    )
    response = await call
    return [car.slug for car in response.cars], str((await metadata_of_call(call))["x-cache"])


async def test_a_hidden_or_out_of_service_car_is_neither_free_nor_priced_nor_bookable(
    server: RunningServer, migrated_settings: Settings
) -> None:
    fleet = fleet_pb2_grpc.FleetServiceStub(server.channel)
    bookings = booking_pb2_grpc.BookingServiceStub(server.channel)
    admin = auth(migrated_settings, Role.ADMIN)
    start = date.today() + timedelta(days=20)
    span = {"start_date": gdate(start), "end_date": gdate(start + timedelta(days=3))}
    for fields in ({"hidden": True}, {"available": False}):
        car_id = await create_car(fleet, admin, **fields)

        # GetCar still answers by id, and says why it cannot be booked.
        car = (await fleet.GetCar(fleet_pb2.GetCarRequest(car_id=car_id))).car
        assert (car.hidden, car.available) == (fields.get("hidden", False), fields.get("available", True))

        free = await fleet.GetCarAvailability(fleet_pb2.GetCarAvailabilityRequest(car_id=car_id, **span))
        assert free.available is False
        assert [date(d.year, d.month, d.day) for d in free.unavailable_dates] == [
            start + timedelta(days=i) for i in range(3)
        ]

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await fleet.QuotePrice(fleet_pb2.QuotePriceRequest(car_id=car_id, **span))
        assert refused.value.code() is grpc.StatusCode.ABORTED
        assert error_info(refused.value).reason == "CAR_UNAVAILABLE"
        assert error_info(refused.value).metadata["car_id"] == car_id

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await bookings.CreateBooking(
                booking_pb2.CreateBookingRequest(
                    request_id=str(uuid.uuid4()),
                    car_id=car_id,
                    contact=booking_pb2.Contact(full_name="Ada Lovelace", email="ada@example.com"),
                    **span,
                )
            )
        assert refused.value.code() is grpc.StatusCode.ABORTED
        assert error_info(refused.value).reason == "CAR_UNAVAILABLE"

        # Back in service and listed: free and priced again (the car's cache entries are dropped).
        await fleet.UpdateCar(
            fleet_pb2.UpdateCarRequest(
                car_id=car_id,
                car=fleet_pb2.Car(hidden=False, available=True),
                update_mask=field_mask_pb2.FieldMask(paths=["hidden", "available"]),
            ),
            metadata=admin,
        )
        again = await fleet.GetCarAvailability(fleet_pb2.GetCarAvailabilityRequest(car_id=car_id, **span))
        assert again.available is True
        quote = await fleet.QuotePrice(fleet_pb2.QuotePriceRequest(car_id=car_id, **span))
        assert (quote.quote.days, quote.quote.rental.amount_minor) == (3, 150000)


async def test_only_staff_list_hidden_cars_and_nobody_else_gets_their_page_from_the_cache(
    server: RunningServer, migrated_settings: Settings
) -> None:
    fleet = fleet_pb2_grpc.FleetServiceStub(server.channel)
    admin = auth(migrated_settings, Role.ADMIN)
    category = f"hidden-{uuid.uuid4().hex[:8]}"
    shown = await create_car(fleet, admin, slug=f"a-shown-{uuid.uuid4().hex[:6]}", category=category)
    hidden = await create_car(
        fleet, admin, slug=f"b-hidden-{uuid.uuid4().hex[:6]}", category=category, hidden=True
    )
    slug = {
        car_id: (await fleet.GetCar(fleet_pb2.GetCarRequest(car_id=car_id))).car.slug
        for car_id in (shown, hidden)
    }

    # Staff first, so that their page is in the cache before anyone else asks the same request.
    assert await listed(fleet, category, admin, show_hidden=True) == ([slug[shown], slug[hidden]], "MISS")
    assert await listed(fleet, category, admin, show_hidden=True) == ([slug[shown], slug[hidden]], "HIT")

    for who in ([], auth(migrated_settings, Role.CUSTOMER)):
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await listed(fleet, category, who, show_hidden=True)
            assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
            assert error_info(refused.value).reason == "PERMISSION_DENIED"

    # Without show_hidden nobody sees the hidden car, staff included, on a MISS or a HIT.
    for who in ([], auth(migrated_settings, Role.CUSTOMER), admin):
        assert await listed(fleet, category, who) == ([slug[shown]], "MISS")
        assert await listed(fleet, category, who) == ([slug[shown]], "HIT")

    # Hiding the listed car drops every cached page of the fleet.
    await fleet.UpdateCar(
        fleet_pb2.UpdateCarRequest(
            car_id=shown,
            car=fleet_pb2.Car(hidden=True),
            update_mask=field_mask_pb2.FieldMask(paths=["hidden"]),
        ),
        metadata=admin,
    )
    assert await listed(fleet, category) == ([], "MISS")
    assert await listed(fleet, category, admin, show_hidden=True) == ([slug[shown], slug[hidden]], "MISS")
