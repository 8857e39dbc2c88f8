"""`ExoDriveSyncClient`: the blocking facade, same behaviour as the async client."""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Generic, Self, TypeVar

import grpc
from exodrive.v1 import booking_pb2_grpc, fleet_pb2_grpc, inbox_pb2_grpc, webhook_pb2_grpc
from google.protobuf.message import Message

from clients.async_client import DEFAULT_TIMEOUT_SECONDS, ClientConfig
from clients.call_metadata import Reply, metadata_pairs, new_trace_id, outgoing_metadata, text_metadata
from clients.errors import TRACE_ID_KEY
from clients.retry import RetryPolicy

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


class SyncMethod(Generic[Req, Resp]):
    """One blocking RPC with deadline, trace id, credentials, retries and typed errors."""

    def __init__(
        self, name: str, call: grpc.UnaryUnaryMultiCallable[Req, Resp], config: ClientConfig
    ) -> None:
        self.name = name
        self._call = call
        self._config = config

    def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = None,
        trace_id: str | None = None,
        booking_token: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Resp:
        return self.with_reply(
            request, timeout=timeout, trace_id=trace_id, booking_token=booking_token, metadata=metadata
        ).response

    def with_reply(
        self,
        request: Req,
        *,
        timeout: float | None = None,
        trace_id: str | None = None,
        booking_token: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Reply[Resp]:
        trace = trace_id or new_trace_id()
        sent = tuple(
            outgoing_metadata(
                trace_id=trace, token=self._config.token, booking_token=booking_token, extra=metadata
            )
        )
        deadline = time.monotonic() + (timeout if timeout is not None else self._config.default_timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                response, call = self._call.with_call(
                    request, timeout=max(deadline - time.monotonic(), 0.0), metadata=sent
                )
            except grpc.RpcError as failure:
                if not isinstance(failure, grpc.Call):
                    raise
                error, delay = self._config.retry.after_failure(self.name, failure, attempt, deadline, trace)
                if delay is None:
                    raise error from None
                time.sleep(delay)
                continue
            received = text_metadata(
                metadata_pairs(call.initial_metadata()), metadata_pairs(call.trailing_metadata())
            )
            return Reply(response, received.get(TRACE_ID_KEY, trace), received)


class SyncFleetClient:
    def __init__(self, channel: grpc.Channel, config: ClientConfig) -> None:
        stub = fleet_pb2_grpc.FleetServiceStub(channel)
        self.list_cars = SyncMethod("ListCars", stub.ListCars, config)
        self.get_car = SyncMethod("GetCar", stub.GetCar, config)
        self.get_car_availability = SyncMethod("GetCarAvailability", stub.GetCarAvailability, config)
        self.quote_price = SyncMethod("QuotePrice", stub.QuotePrice, config)
        self.create_car = SyncMethod("CreateCar", stub.CreateCar, config)
        self.update_car = SyncMethod("UpdateCar", stub.UpdateCar, config)


class SyncBookingsClient:
    def __init__(self, channel: grpc.Channel, config: ClientConfig) -> None:
        stub = booking_pb2_grpc.BookingServiceStub(channel)
        self.create_booking = SyncMethod("CreateBooking", stub.CreateBooking, config)
        self.get_booking = SyncMethod("GetBooking", stub.GetBooking, config)
        self.list_bookings = SyncMethod("ListBookings", stub.ListBookings, config)
        self.cancel_booking = SyncMethod("CancelBooking", stub.CancelBooking, config)
        self.update_booking_status = SyncMethod("UpdateBookingStatus", stub.UpdateBookingStatus, config)


class SyncInboxClient:
    def __init__(self, channel: grpc.Channel, config: ClientConfig) -> None:
        stub = inbox_pb2_grpc.InboxServiceStub(channel)
        self.list_emails = SyncMethod("ListEmails", stub.ListEmails, config)
        self.get_email = SyncMethod("GetEmail", stub.GetEmail, config)
        self.get_email_stats = SyncMethod("GetEmailStats", stub.GetEmailStats, config)


class SyncWebhooksClient:
    def __init__(self, channel: grpc.Channel, config: ClientConfig) -> None:
        stub = webhook_pb2_grpc.WebhookServiceStub(channel)
        self.handle_resend_event = SyncMethod("HandleResendEvent", stub.HandleResendEvent, config)
        self.list_webhook_events = SyncMethod("ListWebhookEvents", stub.ListWebhookEvents, config)
        self.replay_webhook_event = SyncMethod("ReplayWebhookEvent", stub.ReplayWebhookEvent, config)


class ExoDriveSyncClient:
    """Blocking client. `with ExoDriveSyncClient("127.0.0.1:50051") as client: ...`."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.channel = (
            grpc.secure_channel(target, credentials)
            if credentials is not None
            else grpc.insecure_channel(target)
        )
        config = ClientConfig(token=token, default_timeout=default_timeout, retry=retry or RetryPolicy())
        self.fleet = SyncFleetClient(self.channel, config)
        self.bookings = SyncBookingsClient(self.channel, config)
        self.inbox = SyncInboxClient(self.channel, config)
        self.webhooks = SyncWebhooksClient(self.channel, config)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
