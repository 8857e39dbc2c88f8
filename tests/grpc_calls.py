"""The full application served over real gRPC for the fleet and booking tests, its rate limits
off (these tests call many times from one address), with small call helpers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date

import grpc
from conftest import RunningServer
from edge_harness import status_details
from exodrive.v1 import fleet_pb2, fleet_pb2_grpc, money_pb2
from google.rpc import error_details_pb2
from google.type import date_pb2

from server.auth import mint_token
from server.bootstrap import build_application
from server.grpc_server import GrpcServer
from server.settings import Settings
from services.principal import Role

Metadata = list[tuple[str, str]]


@asynccontextmanager
async def serve_unlimited(settings: Settings) -> AsyncIterator[RunningServer]:
    app = await build_application(settings.model_copy(update={"rate_limit_enabled": False}))
    server = GrpcServer(app, host="127.0.0.1", port=0, grace_seconds=1.0)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        yield RunningServer(server.address, channel, app, server)
    finally:
        await channel.close()
        await server.stop(grace_seconds=1.0)


def auth(settings: Settings, role: Role, subject: str | None = None) -> Metadata:
    assert settings.jwt_secret is not None
    token = mint_token(
        settings.jwt_secret.get_secret_value(), role=role, subject=subject or f"{role}-{uuid.uuid4().hex[:8]}"
    )
    return [("authorization", f"Bearer {token}")]


def gdate(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def usd(cents: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="USD", amount_minor=cents)


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    for packed in status_details(error).details:
        info = error_details_pb2.ErrorInfo()
        if packed.Unpack(info):
            return info
    raise AssertionError("no ErrorInfo in the status details")


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    for packed in status_details(error).details:
        bad = error_details_pb2.BadRequest()
        if packed.Unpack(bad):
            return [violation.field for violation in bad.field_violations]
    return []


async def create_car(fleet: fleet_pb2_grpc.FleetServiceStub, admin: Metadata, **fields: object) -> str:
    values: dict[str, object] = {
        "slug": f"car-{uuid.uuid4().hex[:10]}",
        "name": "Porsche 911 GT3",
        "daily_rate": usd(50000),
        "deposit": usd(200000),
        "minimum_days": 1,
        "available": True,
    }
    values.update(fields)
    created = await fleet.CreateCar(fleet_pb2.CreateCarRequest(car=fleet_pb2.Car(**values)), metadata=admin)  # type: ignore[arg-type]
    return created.car.car_id
