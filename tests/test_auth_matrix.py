"""Every RPC x {anonymous, customer A, customer B, guest token holder, admin, service}: the edge
lets exactly the callers the contract's policy allows through, and ownership holds for bookings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from exodrive.v1 import booking_pb2, booking_pb2_grpc, options_pb2
from fleet_helpers import booking_request, contact, customer, from_today, make_car
from google.protobuf import message_factory
from google.rpc import error_details_pb2, status_pb2

from server.auth import mint_token
from server.bootstrap import Application, build_application
from server.grpc_server import GrpcServer
from server.policy import PolicyTable
from server.settings import Settings
from services.principal import ANONYMOUS, Role

CALLERS = ["anonymous", "customer-a", "customer-b", "guest", "admin", "service"]
EDGE_REFUSALS = {"UNAUTHENTICATED", "PERMISSION_DENIED"}


def allowed(access: int, caller: str) -> bool:
    if access in (options_pb2.ACCESS_PUBLIC, options_pb2.ACCESS_PROVIDER):
        return True
    if access == options_pb2.ACCESS_AUTHENTICATED:
        return caller in ("customer-a", "customer-b", "admin", "service")
    return caller in ("admin", "service")


class Matrix:
    def __init__(self, app: Application, channel: grpc.aio.Channel, guest_token: str) -> None:
        self.app = app
        self.channel = channel
        secret = app.settings.jwt_secret.get_secret_value() if app.settings.jwt_secret else ""

        def bearer(role: Role, subject: str) -> tuple[tuple[str, str], ...]:
            return (("authorization", f"Bearer {mint_token(secret, role=role, subject=subject)}"),)

        self.metadata: dict[str, tuple[tuple[str, str], ...]] = {
            "anonymous": (),
            "customer-a": bearer(Role.CUSTOMER, "matrix-a"),
            "customer-b": bearer(Role.CUSTOMER, "matrix-b"),
            "guest": (("x-booking-token", guest_token),),
            "admin": bearer(Role.ADMIN, "matrix-admin"),
            "service": bearer(Role.SERVICE, "matrix-service"),
        }

    async def call(self, method: str, request: Any, caller: str) -> tuple[grpc.StatusCode, str]:
        info = PolicyTable().get(method)
        assert info is not None
        response_type = message_factory.GetMessageClass(info.descriptor.output_type)
        callable_ = self.channel.unary_unary(
            method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        try:
            await callable_(request, metadata=self.metadata[caller], timeout=10)
        except grpc.aio.AioRpcError as error:
            reason = ""
            for key, value in error.trailing_metadata() or ():
                if key == "grpc-status-details-bin":
                    info_ = error_details_pb2.ErrorInfo()
                    status_pb2.Status.FromString(value).details[0].Unpack(info_)
                    reason = info_.reason
            return error.code(), reason
        return grpc.StatusCode.OK, ""


@pytest.fixture(scope="module")
async def matrix(migrated_settings: Settings) -> AsyncIterator[tuple[Matrix, dict[str, str]]]:
    settings = migrated_settings.model_copy(
        update={
            "redis_key_prefix": f"{migrated_settings.redis_key_prefix}-{uuid.uuid4().hex[:8]}",
            "rate_limit_enabled": False,
        }
    )
    app = await build_application(settings)
    car = await make_car(app)
    owned = await app.bookings.create(
        customer("matrix-a"), booking_request(car.id, from_today(60), from_today(61))
    )
    guest_booking = await app.bookings.create(
        ANONYMOUS, booking_request(car.id, from_today(62), from_today(63), contact=contact())
    )
    assert guest_booking.access_token is not None
    server = GrpcServer(app, host="127.0.0.1", port=0)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    ids = {"owned": str(owned.booking.id), "guest": str(guest_booking.booking.id)}
    try:
        yield Matrix(app, channel, guest_booking.access_token), ids
    finally:
        await channel.close()
        await server.stop(grace_seconds=1.0)


async def test_every_rpc_for_every_caller(matrix: tuple[Matrix, dict[str, str]]) -> None:
    m, _ids = matrix
    policies = PolicyTable()
    results: dict[tuple[str, str], tuple[grpc.StatusCode, str]] = {}
    for info in policies.methods():
        request = message_factory.GetMessageClass(info.descriptor.input_type)()
        for caller in CALLERS:
            code, reason = await m.call(info.full_name, request, caller)
            results[(info.descriptor.name, caller)] = (code, reason)
            if allowed(info.access, caller):
                # Past the edge: whatever the service says about the empty request, it is not a refusal
                # of the caller by the edge (a provider's missing signature is INVALID_SIGNATURE).
                assert reason not in EDGE_REFUSALS, (info.full_name, caller, code, reason)
                assert code != grpc.StatusCode.INTERNAL, (info.full_name, caller)
            elif caller in ("anonymous", "guest"):
                assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"), (
                    info.full_name,
                    caller,
                )
            else:
                assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"), (
                    info.full_name,
                    caller,
                )
    assert len(results) == len(policies.methods()) * len(CALLERS)
    assert len(policies.methods()) == 17


OWNERSHIP = {
    # caller -> may read/cancel customer A's booking
    "anonymous": False,
    "customer-a": True,
    "customer-b": False,
    "guest": False,
    "admin": True,
    "service": True,
}


@pytest.mark.parametrize("caller", CALLERS)
async def test_a_booking_is_read_only_by_its_owner_and_staff(
    matrix: tuple[Matrix, dict[str, str]], caller: str
) -> None:
    m, ids = matrix
    code, _reason = await m.call(
        "/exodrive.v1.BookingService/GetBooking",
        booking_pb2.GetBookingRequest(booking_id=ids["owned"]),
        caller,
    )
    if OWNERSHIP[caller]:
        assert code == grpc.StatusCode.OK
    else:
        assert code in (
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.UNAUTHENTICATED,
        )
    # The guest's token opens its own booking and only that one.
    code, _ = await m.call(
        "/exodrive.v1.BookingService/GetBooking",
        booking_pb2.GetBookingRequest(booking_id=ids["guest"]),
        caller,
    )
    assert (code == grpc.StatusCode.OK) == (caller in ("guest", "admin", "service"))


async def test_list_bookings_shows_a_customer_only_own(matrix: tuple[Matrix, dict[str, str]]) -> None:
    m, ids = matrix
    stub = booking_pb2_grpc.BookingServiceStub(m.channel)
    own = await stub.ListBookings(
        booking_pb2.ListBookingsRequest(page_size=100), metadata=m.metadata["customer-a"]
    )
    assert {b.booking_id for b in own.bookings} == {ids["owned"]}
    other = await stub.ListBookings(
        booking_pb2.ListBookingsRequest(page_size=100), metadata=m.metadata["customer-b"]
    )
    assert other.bookings == []
