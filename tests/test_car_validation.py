"""Car writes are bounded and in the business currency: over real gRPC, each refusal is
INVALID_ARGUMENT naming the field, and nothing is written."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from conftest import RunningServer
from exodrive.v1 import fleet_pb2, fleet_pb2_grpc, money_pb2
from fleet_helpers import ADMIN
from google.protobuf import field_mask_pb2
from grpc_calls import auth, create_car, field_violations, serve_unlimited, usd

from server.settings import Settings
from services.fleet import MAX_FEES
from services.principal import Role


@pytest.fixture
async def server(migrated_settings: Settings) -> AsyncIterator[RunningServer]:
    async with serve_unlimited(migrated_settings) as running:
        yield running


def fees(count: int) -> list[fleet_pb2.CarFee]:
    return [fleet_pb2.CarFee(name=f"Fee {i}", amount=usd(100)) for i in range(count)]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"fees": fees(MAX_FEES + 1)}, "car.fees"),
        # The reported case: every fleet page had grown to ~800 KB. One violation, not 10,000.
        ({"fees": fees(10_000)}, "car.fees"),
        ({"description": "x" * 5001}, "car.description"),
        ({"name": "x" * 201}, "car.name"),
        (
            {
                "daily_rate": money_pb2.Money(currency_code="ZZZ", amount_minor=5000),
                "deposit": money_pb2.Money(currency_code="ZZZ", amount_minor=0),
            },
            "car.daily_rate.currency_code",
        ),
        (
            {
                "daily_rate": money_pb2.Money(currency_code="EUR", amount_minor=5000),
                "deposit": money_pb2.Money(currency_code="EUR", amount_minor=0),
            },
            "car.daily_rate.currency_code",
        ),
    ],
)
async def test_create_car_refuses(
    server: RunningServer, migrated_settings: Settings, fields: dict[str, object], field: str
) -> None:
    fleet = fleet_pb2_grpc.FleetServiceStub(server.channel)
    admin = auth(migrated_settings, Role.ADMIN)
    category = f"invalid-{uuid.uuid4().hex[:8]}"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create_car(fleet, admin, category=category, **fields)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value) == [field]
    listed = await fleet.ListCars(
        fleet_pb2.ListCarsRequest(category=category, show_hidden=True), metadata=admin
    )
    assert list(listed.cars) == []


async def test_the_limits_themselves_are_accepted_and_updates_obey_them(
    server: RunningServer, migrated_settings: Settings
) -> None:
    fleet = fleet_pb2_grpc.FleetServiceStub(server.channel)
    admin = auth(migrated_settings, Role.ADMIN)
    car_id = await create_car(fleet, admin, fees=fees(MAX_FEES), description="x" * 5000)
    car = (await fleet.GetCar(fleet_pb2.GetCarRequest(car_id=car_id))).car
    assert (len(car.fees), car.daily_rate.currency_code) == (MAX_FEES, "USD")

    for changed, paths, field in (
        (fleet_pb2.Car(fees=fees(MAX_FEES + 1)), ["fees"], "car.fees"),
        (
            fleet_pb2.Car(daily_rate=money_pb2.Money(currency_code="ZZZ", amount_minor=1)),
            ["daily_rate"],
            "car.daily_rate.currency_code",
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await fleet.UpdateCar(
                fleet_pb2.UpdateCarRequest(
                    car_id=car_id, car=changed, update_mask=field_mask_pb2.FieldMask(paths=paths)
                ),
                metadata=admin,
            )
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value) == [field]
    # Read from the database, not the cache.
    unchanged = await server.app.fleet.get_car(ADMIN, uuid.UUID(car_id))
    assert (len(unchanged.fees), unchanged.daily_rate_cents, unchanged.currency) == (MAX_FEES, 50000, "USD")
