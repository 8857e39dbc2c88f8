"""Dates are ASCII calendar dates (over HTTP, where they are text) and a rental starts at most
max_advance_days ahead: INVALID_ARGUMENT / 400 naming the field, over the real gateway and gRPC."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta

import grpc
import httpx
import pytest
from exodrive.v1 import booking_pb2, booking_pb2_grpc, fleet_pb2, fleet_pb2_grpc
from fleet_helpers import ADMIN, car_draft
from grpc_calls import auth, field_violations, gdate, serve_unlimited

from server.gateway import GatewayServer, create_gateway_app
from server.settings import Settings
from services.errors import DomainError
from services.principal import Role
from services.rental import rental_period

# ASCII digit -> FULLWIDTH DIGIT (U+FF10..U+FF19), which Python's int() reads as the same number.
FULL_WIDTH = {ord("0") + i: 0xFF10 + i for i in range(10)}


@dataclass
class Stack:
    http: httpx.AsyncClient
    fleet: fleet_pb2_grpc.FleetServiceStub
    bookings: booking_pb2_grpc.BookingServiceStub
    car_id: str
    today: date


@pytest.fixture
async def stack(migrated_settings: Settings) -> AsyncIterator[Stack]:
    async with serve_unlimited(migrated_settings) as server:
        car = await server.app.fleet.create_car(ADMIN, car_draft())
        gateway = GatewayServer(create_gateway_app(migrated_settings, server.address))
        await gateway.start()
        try:
            async with httpx.AsyncClient(base_url=gateway.url) as http:
                yield Stack(
                    http,
                    fleet_pb2_grpc.FleetServiceStub(server.channel),
                    booking_pb2_grpc.BookingServiceStub(server.channel),
                    str(car.id),
                    server.app.clock.today(),
                )
        finally:
            await gateway.stop()


def assert_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    violations = [v["field"] for detail in error["details"] for v in detail.get("fieldViolations", [])]
    assert violations == [field]


async def test_full_width_digits_are_not_a_date(stack: Stack) -> None:
    start = stack.today + timedelta(days=30)
    end = start + timedelta(days=2)
    ascii_query = f"startDate={start.isoformat()}&endDate={end.isoformat()}"
    quoted = await stack.http.get(f"/v1/cars/{stack.car_id}/quote?{ascii_query}")
    assert quoted.status_code == 200, quoted.text
    assert quoted.json()["quote"]["days"] == 2

    wide = start.isoformat().translate(FULL_WIDTH)
    for route in ("quote", "availability"):
        response = await stack.http.get(
            f"/v1/cars/{stack.car_id}/{route}?startDate={wide}&endDate={end.isoformat()}"
        )
        assert_refused(response, "start_date")
    # Numbers in JSON strings too: protojson would read them with int().
    body = {
        "requestId": str(uuid.uuid4()),
        "carId": stack.car_id,
        "startDate": {"year": str(start.year).translate(FULL_WIDTH), "month": start.month, "day": start.day},
        "endDate": {"year": end.year, "month": end.month, "day": end.day},
        "contact": {"fullName": "Ada Lovelace", "email": "ada@example.com"},
    }
    assert_refused(await stack.http.post("/v1/bookings", json=body), "start_date.year")
    assert_refused(await stack.http.get("/v1/cars?pageSize=" + "20".translate(FULL_WIDTH)), "page_size")


async def test_a_rental_starts_at_most_max_advance_days_ahead(
    stack: Stack, migrated_settings: Settings
) -> None:
    horizon = migrated_settings.max_advance_days
    last = stack.today + timedelta(days=horizon)
    quoted = await stack.fleet.QuotePrice(
        fleet_pb2.QuotePriceRequest(
            car_id=stack.car_id, start_date=gdate(last), end_date=gdate(last + timedelta(days=1))
        )
    )
    assert quoted.quote.days == 1

    for start in (last + timedelta(days=1), date(9999, 12, 1)):
        span = {"start_date": gdate(start), "end_date": gdate(start + timedelta(days=2))}
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.fleet.QuotePrice(fleet_pb2.QuotePriceRequest(car_id=stack.car_id, **span))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value) == ["start_date"]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.bookings.CreateBooking(
                booking_pb2.CreateBookingRequest(
                    request_id=str(uuid.uuid4()),
                    car_id=stack.car_id,
                    contact=booking_pb2.Contact(full_name="Ada Lovelace", email="ada@example.com"),
                    **span,
                ),
                metadata=auth(migrated_settings, Role.CUSTOMER),
            )
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value) == ["start_date"]

    response = await stack.http.get(f"/v1/cars/{stack.car_id}/quote?startDate=9999-12-01&endDate=9999-12-03")
    assert_refused(response, "start_date")


def test_the_horizon_is_a_setting() -> None:
    today = date(2030, 6, 1)
    assert rental_period(date(2030, 6, 11), date(2030, 6, 12), today=today, max_advance_days=10).days == 1
    with pytest.raises(DomainError) as refused:
        rental_period(date(2030, 6, 12), date(2030, 6, 13), today=today, max_advance_days=10)
    assert [v.field for v in refused.value.violations] == ["start_date"]
