"""BookingService over gRPC."""

from __future__ import annotations

import dataclasses

from exodrive.v1 import booking_pb2, booking_pb2_grpc
from grpc import aio

from server.convert import (
    booking_to_proto,
    parse_contact,
    parse_date,
    parse_optional_uuid,
    parse_page_size,
    parse_status,
    parse_uuid,
    timestamp_to_proto,
)
from server.request_context import current_principal
from services.booking import BookingRequest, BookingService
from services.principal import Principal

Context = aio.ServicerContext[object, object]

BOOKING_TOKEN_HEADER = "x-booking-token"  # noqa: S105 (a header name, not a secret)


def caller(context: Context) -> Principal:
    """The call's principal, with the guest's `x-booking-token` when the caller sent one."""
    principal = current_principal()
    if principal.booking_token is not None:
        return principal
    for key, value in context.invocation_metadata() or ():
        if key == BOOKING_TOKEN_HEADER and isinstance(value, str) and value:
            return dataclasses.replace(principal, booking_token=value)
    return principal


class BookingServicer(booking_pb2_grpc.BookingServiceServicer):
    def __init__(self, bookings: BookingService) -> None:
        self._bookings = bookings

    async def CreateBooking(
        self, request: booking_pb2.CreateBookingRequest, context: Context
    ) -> booking_pb2.CreateBookingResponse:
        booking_request = BookingRequest(
            request_id=parse_uuid(request.request_id, "request_id"),
            car_id=parse_uuid(request.car_id, "car_id"),
            start_date=parse_date(request.start_date, "start_date", present=request.HasField("start_date")),
            end_date=parse_date(request.end_date, "end_date", present=request.HasField("end_date")),
            contact=parse_contact(request.contact, present=request.HasField("contact")),
            notes=request.notes,
        )
        created = await self._bookings.create(caller(context), booking_request)
        return booking_pb2.CreateBookingResponse(
            booking=booking_to_proto(created.booking),
            access_token=created.access_token or "",
            access_token_expire_time=timestamp_to_proto(created.access_token_expires_at),
        )

    async def GetBooking(
        self, request: booking_pb2.GetBookingRequest, context: Context
    ) -> booking_pb2.GetBookingResponse:
        booking = await self._bookings.get(caller(context), parse_uuid(request.booking_id, "booking_id"))
        return booking_pb2.GetBookingResponse(booking=booking_to_proto(booking))

    async def ListBookings(
        self, request: booking_pb2.ListBookingsRequest, context: Context
    ) -> booking_pb2.ListBookingsResponse:
        bookings, token = await self._bookings.list_bookings(
            caller(context),
            page_size=parse_page_size(request.page_size),
            page_token=request.page_token,
            status=parse_status(request.status, "status", required=False),
            car_id=parse_optional_uuid(request.car_id, "car_id"),
        )
        return booking_pb2.ListBookingsResponse(
            bookings=[booking_to_proto(booking) for booking in bookings], next_page_token=token
        )

    async def CancelBooking(
        self, request: booking_pb2.CancelBookingRequest, context: Context
    ) -> booking_pb2.CancelBookingResponse:
        booking = await self._bookings.cancel(
            caller(context), parse_uuid(request.booking_id, "booking_id"), request.reason
        )
        return booking_pb2.CancelBookingResponse(booking=booking_to_proto(booking))

    async def UpdateBookingStatus(
        self, request: booking_pb2.UpdateBookingStatusRequest, context: Context
    ) -> booking_pb2.UpdateBookingStatusResponse:
        booking_id = parse_uuid(request.booking_id, "booking_id")
        target = parse_status(request.status, "status", required=True)
        assert target is not None
        booking = await self._bookings.transition(caller(context), booking_id, target, request.reason)
        return booking_pb2.UpdateBookingStatusResponse(booking=booking_to_proto(booking))
