"""`ExoDriveClient`: the typed asyncio client, one channel for the four services.

Every call gets a deadline (per call, else the client default), an `x-trace-id` (given or made
here) and the bearer token; UNAVAILABLE is retried with backoff for idempotent methods; a failure
raises a typed `ExoDriveError`. `await client.fleet.get_car(request)` returns the response;
`await client.fleet.get_car.with_reply(request)` also returns the trace id and metadata.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Generic, Self, TypeVar

import grpc
from exodrive.v1 import booking_pb2_grpc, fleet_pb2_grpc, inbox_pb2_grpc, webhook_pb2_grpc
from google.protobuf.message import Message

from clients.call_metadata import Reply, metadata_pairs, new_trace_id, outgoing_metadata, text_metadata
from clients.errors import TRACE_ID_KEY
from clients.retry import RetryPolicy

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ClientConfig:
    token: str | None = None
    default_timeout: float = DEFAULT_TIMEOUT_SECONDS
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class AsyncMethod(Generic[Req, Resp]):
    """One RPC with deadline, trace id, credentials, retries and typed errors."""

    def __init__(
        self, name: str, call: grpc.aio.UnaryUnaryMultiCallable[Req, Resp], config: ClientConfig
    ) -> None:
        self.name = name
        self._call = call
        self._config = config

    async def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the gRPC deadline, as grpc names it
        trace_id: str | None = None,
        booking_token: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Resp:
        reply = await self.with_reply(
            request, timeout=timeout, trace_id=trace_id, booking_token=booking_token, metadata=metadata
        )
        return reply.response

    async def with_reply(
        self,
        request: Req,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the gRPC deadline, as grpc names it
        trace_id: str | None = None,
        booking_token: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Reply[Resp]:
        trace = trace_id or new_trace_id()
        sent = outgoing_metadata(
            trace_id=trace, token=self._config.token, booking_token=booking_token, extra=metadata
        )
        # The deadline covers every attempt, backoff included.
        deadline = time.monotonic() + (timeout if timeout is not None else self._config.default_timeout)
        attempt = 0
        while True:
            attempt += 1
            call = self._call(request, timeout=max(deadline - time.monotonic(), 0.0), metadata=sent)
            try:
                response = await call
            except grpc.aio.AioRpcError as failure:
                error, delay = self._config.retry.after_failure(self.name, failure, attempt, deadline, trace)
                if delay is None:
                    raise error from None
                await asyncio.sleep(delay)
                continue
            received = text_metadata(
                metadata_pairs(await call.initial_metadata()), metadata_pairs(await call.trailing_metadata())
            )
            return Reply(response, received.get(TRACE_ID_KEY, trace), received)


class FleetClient:
    def __init__(self, channel: grpc.aio.Channel, config: ClientConfig) -> None:
        stub = fleet_pb2_grpc.FleetServiceStub(channel)
        self.list_cars = AsyncMethod("ListCars", stub.ListCars, config)
        self.get_car = AsyncMethod("GetCar", stub.GetCar, config)
        self.get_car_availability = AsyncMethod("GetCarAvailability", stub.GetCarAvailability, config)
        self.quote_price = AsyncMethod("QuotePrice", stub.QuotePrice, config)
        self.create_car = AsyncMethod("CreateCar", stub.CreateCar, config)
        self.update_car = AsyncMethod("UpdateCar", stub.UpdateCar, config)


class BookingsClient:
    def __init__(self, channel: grpc.aio.Channel, config: ClientConfig) -> None:
        stub = booking_pb2_grpc.BookingServiceStub(channel)
        self.create_booking = AsyncMethod("CreateBooking", stub.CreateBooking, config)
        self.get_booking = AsyncMethod("GetBooking", stub.GetBooking, config)
        self.list_bookings = AsyncMethod("ListBookings", stub.ListBookings, config)
        self.cancel_booking = AsyncMethod("CancelBooking", stub.CancelBooking, config)
        self.update_booking_status = AsyncMethod("UpdateBookingStatus", stub.UpdateBookingStatus, config)


class InboxClient:
    def __init__(self, channel: grpc.aio.Channel, config: ClientConfig) -> None:
        stub = inbox_pb2_grpc.InboxServiceStub(channel)
        self.list_emails = AsyncMethod("ListEmails", stub.ListEmails, config)
        self.get_email = AsyncMethod("GetEmail", stub.GetEmail, config)
        self.get_email_stats = AsyncMethod("GetEmailStats", stub.GetEmailStats, config)


class WebhooksClient:
    def __init__(self, channel: grpc.aio.Channel, config: ClientConfig) -> None:
        stub = webhook_pb2_grpc.WebhookServiceStub(channel)
        self.handle_resend_event = AsyncMethod("HandleResendEvent", stub.HandleResendEvent, config)
        self.list_webhook_events = AsyncMethod("ListWebhookEvents", stub.ListWebhookEvents, config)
        self.replay_webhook_event = AsyncMethod("ReplayWebhookEvent", stub.ReplayWebhookEvent, config)


class ExoDriveClient:
    """Async client. `ExoDriveClient("127.0.0.1:50051", token=...)`; close it, or use `async with`."""

    def __init__(
        self,
        target: str | None = None,
        *,
        channel: grpc.aio.Channel | None = None,
        token: str | None = None,
        default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        if channel is None:
            if target is None:
                raise ValueError("give a target address or a channel")
            channel = (
                grpc.aio.secure_channel(target, credentials)
                if credentials is not None
                else grpc.aio.insecure_channel(target)
            )
            self._owns_channel = True
        else:
            self._owns_channel = False
        self.channel = channel
        config = ClientConfig(token=token, default_timeout=default_timeout, retry=retry or RetryPolicy())
        self.fleet = FleetClient(channel, config)
        self.bookings = BookingsClient(channel, config)
        self.inbox = InboxClient(channel, config)
        self.webhooks = WebhooksClient(channel, config)

    async def close(self) -> None:
        if self._owns_channel:
            await self.channel.close(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
