"""Requests the earlier sweeps turned into 500s, each now INVALID_ARGUMENT naming the field.

Over real gRPC and real HTTP against the real server: header values gRPC metadata cannot carry,
text PostgreSQL cannot store (U+0000 in any string field), instants outside what Python and
PostgreSQL accept, page sizes, ids, money that would overflow a computed price, and signed
webhook bodies whose contents no column could hold (stored as failed, answered 400).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from edge_harness import status_details
from exodrive.v1 import (
    booking_pb2,
    booking_pb2_grpc,
    fleet_pb2,
    fleet_pb2_grpc,
    inbox_pb2,
    inbox_pb2_grpc,
    money_pb2,
    webhook_pb2,
    webhook_pb2_grpc,
)
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from pydantic import SecretStr
from resend_samples import SECRET, encode, event, now, sign
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from server.auth import mint_token
from server.bootstrap import Application, build_application
from server.gateway import GatewayServer, create_gateway_app
from server.grpc_server import GrpcServer
from server.interceptors.request_text import nul_fields
from server.settings import Settings
from services.principal import Role


@dataclass
class Stack:
    channel: grpc.aio.Channel
    http: httpx.AsyncClient
    app: Application
    admin: tuple[tuple[str, str], ...]
    database_url: str


@pytest.fixture(scope="module")
async def stack(migrated_settings: Settings) -> AsyncIterator[Stack]:
    settings = migrated_settings.model_copy(
        update={"resend_webhook_secrets": [SecretStr(SECRET)], "rate_limit_enabled": False}
    )
    app = await build_application(settings)
    server = GrpcServer(app, host="127.0.0.1", port=0, grace_seconds=1.0)
    await server.start()
    gateway = GatewayServer(create_gateway_app(settings, server.address))
    await gateway.start()
    channel = grpc.aio.insecure_channel(server.address)
    assert settings.jwt_secret is not None
    assert settings.database_url is not None
    token = mint_token(settings.jwt_secret.get_secret_value(), role=Role.ADMIN, subject="validation-admin")
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            yield Stack(channel, http, app, (("authorization", f"Bearer {token}"),), settings.database_url)
    finally:
        await channel.close()
        await gateway.stop()
        await server.stop(grace_seconds=1.0)
        await app.close()


async def refused(call: Awaitable[Any]) -> list[str]:
    """The fields named by the INVALID_ARGUMENT the call must end with."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    for detail in status_details(caught.value).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            return [violation.field for violation in bad_request.field_violations]
    raise AssertionError("no BadRequest detail")


def stamp(json_time: str) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromJsonString(json_time)
    return value


def money(cents: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="USD", amount_minor=cents)


# --- the sweep's findings, over gRPC ------------------------------------------------------


async def test_negative_page_size_of_list_emails_names_page_size(stack: Stack) -> None:
    inbox = inbox_pb2_grpc.InboxServiceStub(stack.channel)
    request = inbox_pb2.ListEmailsRequest(page_size=-28184, end_time=stamp("0953-02-17T06:22:12Z"))
    assert await refused(inbox.ListEmails(request, metadata=stack.admin)) == ["page_size"]


async def test_instants_of_year_953_and_9999_are_valid_filters(stack: Stack) -> None:
    inbox = inbox_pb2_grpc.InboxServiceStub(stack.channel)
    early = await inbox.ListEmails(
        inbox_pb2.ListEmailsRequest(end_time=stamp("0953-02-17T06:22:12Z")), metadata=stack.admin
    )
    assert list(early.emails) == []
    assert early.total_size == 0
    late = await inbox.GetEmailStats(
        inbox_pb2.GetEmailStatsRequest(start_time=stamp("9999-12-31T23:59:59Z")), metadata=stack.admin
    )
    assert late.total == 0


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        # Year 10000 and year 0: outside Timestamp's range (protobuf's own check).
        (timestamp_pb2.Timestamp(seconds=253_402_300_800), "start_time"),
        (timestamp_pb2.Timestamp(seconds=-62_135_596_801), "start_time"),
        (timestamp_pb2.Timestamp(seconds=0, nanos=-1), "start_time"),
        (timestamp_pb2.Timestamp(seconds=0, nanos=1_000_000_000), "start_time"),
    ],
)
async def test_timestamps_outside_the_valid_range_name_the_field(
    stack: Stack, raw: timestamp_pb2.Timestamp, field: str
) -> None:
    inbox = inbox_pb2_grpc.InboxServiceStub(stack.channel)
    assert await refused(
        inbox.ListEmails(inbox_pb2.ListEmailsRequest(start_time=raw), metadata=stack.admin)
    ) == [field]
    assert await refused(
        inbox.GetEmailStats(inbox_pb2.GetEmailStatsRequest(start_time=raw), metadata=stack.admin)
    ) == [field]
    webhooks = webhook_pb2_grpc.WebhookServiceStub(stack.channel)
    assert await refused(
        webhooks.ListWebhookEvents(webhook_pb2.ListWebhookEventsRequest(start_time=raw), metadata=stack.admin)
    ) == [field]


async def test_stats_starting_in_year_3547_before_its_end_names_end_time(stack: Stack) -> None:
    inbox = inbox_pb2_grpc.InboxServiceStub(stack.channel)
    request = inbox_pb2.GetEmailStatsRequest(
        start_time=stamp("3547-01-13T05:47:04.700Z"), end_time=stamp("2026-12-03T17:25:35Z")
    )
    assert await refused(inbox.GetEmailStats(request, metadata=stack.admin)) == ["end_time"]


@pytest.mark.parametrize("booking_id", ["\x87", "|", "42", "not-a-uuid"])
async def test_transition_with_a_non_uuid_id_names_booking_id(stack: Stack, booking_id: str) -> None:
    bookings = booking_pb2_grpc.BookingServiceStub(stack.channel)
    request = booking_pb2.UpdateBookingStatusRequest(
        booking_id=booking_id, status=booking_pb2.BOOKING_STATUS_ACTIVE
    )
    assert await refused(bookings.UpdateBookingStatus(request, metadata=stack.admin)) == ["booking_id"]


async def test_webhook_event_listing_refuses_negative_page_sizes(stack: Stack) -> None:
    webhooks = webhook_pb2_grpc.WebhookServiceStub(stack.channel)
    request = webhook_pb2.ListWebhookEventsRequest(page_size=-1)
    assert await refused(webhooks.ListWebhookEvents(request, metadata=stack.admin)) == ["page_size"]


# --- U+0000 in any string field -----------------------------------------------------------

NUL = "a\x00b"


async def test_nul_characters_are_refused_in_every_service(stack: Stack) -> None:
    inbox = inbox_pb2_grpc.InboxServiceStub(stack.channel)
    fleet = fleet_pb2_grpc.FleetServiceStub(stack.channel)
    bookings = booking_pb2_grpc.BookingServiceStub(stack.channel)
    webhooks = webhook_pb2_grpc.WebhookServiceStub(stack.channel)
    admin = stack.admin
    assert await refused(inbox.ListEmails(inbox_pb2.ListEmailsRequest(search=NUL), metadata=admin)) == [
        "search"
    ]
    assert await refused(
        inbox.ListEmails(inbox_pb2.ListEmailsRequest(recipient=NUL, email_type=NUL), metadata=admin)
    ) == ["email_type", "recipient"]
    assert await refused(
        webhooks.ListWebhookEvents(webhook_pb2.ListWebhookEventsRequest(provider=NUL), metadata=admin)
    ) == ["provider"]
    assert await refused(fleet.ListCars(fleet_pb2.ListCarsRequest(category=NUL))) == ["category"]
    car = fleet_pb2.Car(
        slug="nul-car",
        name=NUL,
        daily_rate=money(100),
        deposit=money(0),
        minimum_days=1,
        fees=[fleet_pb2.CarFee(name="ok", amount=money(1)), fleet_pb2.CarFee(name=NUL, amount=money(1))],
    )
    assert await refused(fleet.CreateCar(fleet_pb2.CreateCarRequest(car=car), metadata=admin)) == [
        "car.name",
        "car.fees[1].name",
    ]
    booking = booking_pb2.CreateBookingRequest(
        request_id=str(uuid.uuid4()),
        car_id=str(uuid.uuid4()),
        contact=booking_pb2.Contact(full_name=NUL, email="ada@example.com"),
        notes=NUL,
    )
    assert await refused(bookings.CreateBooking(booking)) == ["contact.full_name", "notes"]
    cancel = booking_pb2.CancelBookingRequest(booking_id=str(uuid.uuid4()), reason=NUL)
    assert await refused(bookings.CancelBooking(cancel, metadata=admin)) == ["reason"]


async def test_money_that_would_overflow_a_price_is_refused(stack: Stack) -> None:
    fleet = fleet_pb2_grpc.FleetServiceStub(stack.channel)
    car = fleet_pb2.Car(
        slug="too-dear", name="Too dear", daily_rate=money(2**62), deposit=money(0), minimum_days=1
    )
    assert await refused(fleet.CreateCar(fleet_pb2.CreateCarRequest(car=car), metadata=stack.admin)) == [
        "car.daily_rate.amount_minor"
    ]


# --- through the gateway: headers gRPC metadata cannot carry --------------------------------


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (b"authorization", b"Bearer \xe9t\xe9"),
        (b"authorization", b"\x87"),
        (b"authorization", b"Bearer a\tb"),
        (b"x-booking-token", b"\xff"),
        (b"grpc-metadata-note", b"caf\xe9"),
        (b"grpc-metadata-a!b", b"fine"),
        (b"x-forwarded-for", b"203.0.113.7\xa0"),
    ],
)
async def test_headers_grpc_cannot_carry_are_400_naming_the_header(
    stack: Stack, header: bytes, value: bytes
) -> None:
    response = await stack.http.get("/v1/inbox/stats", headers=[(header, value)])
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert response.headers["X-Trace-Id"] == body["error"]["traceId"]
    violations = [
        v for d in body["error"]["details"] if d["@type"].endswith("BadRequest") for v in d["fieldViolations"]
    ]
    assert [v["field"] for v in violations] == [header.decode()]


async def test_printable_header_values_still_pass(stack: Stack) -> None:
    response = await stack.http.get(
        "/v1/inbox/stats", headers={"Authorization": stack.admin[0][1], "Grpc-Metadata-Note": "a b ~"}
    )
    assert response.status_code == 200


# --- signed webhook bodies no column can hold ------------------------------------------------


def resend_event(email_id: str, **changes: Any) -> dict[str, Any]:
    payload = event("email.sent", email_id, now())
    data = changes.pop("data", {})
    payload.update(changes)
    payload["data"].update(data)
    return payload


UNSTORABLE: list[tuple[str, bytes, str]] = [
    ("nul-subject", encode(resend_event("wh-nul", data={"subject": NUL})), "body.data.subject"),
    ("nul-tag-key", encode(resend_event("wh-nul-key", data={"tags": {NUL: "x"}})), "body.data.tags"),
    ("nul-unknown-type", encode({"type": "x\x00", "created_at": "2024-01-01T00:00:00Z"}), "body.type"),
    ("long-type", encode({"type": "x" * 101, "created_at": "2024-01-01T00:00:00Z"}), "body.type"),
    ("long-from", encode(resend_event("wh-from", data={"from": "a" * 321 + "@x.com"})), "body.data.from"),
    ("long-to", encode(resend_event("wh-to", data={"to": ["a" * 321 + "@x.com"]})), "body.data.to[0]"),
    (
        "long-email-type",
        encode(resend_event("wh-type", data={"tags": {"email_type": "t" * 65}})),
        "body.data.tags.email_type",
    ),
    (
        "year-1-offset",
        encode(resend_event("wh-y1", created_at="0001-01-01T00:00:00+05:00")),
        "body.created_at",
    ),
    (
        "year-9999-offset",
        encode(resend_event("wh-y9999", created_at="9999-12-31T23:59:59-05:00")),
        "body.created_at",
    ),
    (
        "huge-number",
        b'{"type":"email.sent","created_at":"2024-01-01T00:00:00Z","data":{"email_id":"wh-n","x":1e400}}',
        "body.data.x",
    ),
    (
        "deep",
        b'{"type":"email.sent","data":{"x":' + b"[" * 5000 + b"]" * 5000 + b"}}",
        "body",
    ),
    (
        "lone-surrogate",
        b'{"type":"email.sent","created_at":"2024-01-01T00:00:00Z","data":{"email_id":"wh-s","subject":"\\ud800"}}',
        "body.data.subject",
    ),
]


@pytest.mark.parametrize(("name", "body", "field"), UNSTORABLE, ids=[case[0] for case in UNSTORABLE])
async def test_signed_bodies_no_column_can_hold_are_stored_failed_and_answered_400(
    stack: Stack, name: str, body: bytes, field: str
) -> None:
    headers = sign(body, now())
    response = await stack.http.post(
        "/api/webhooks/resend", content=body, headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    document = response.json()
    violations = [
        v
        for d in document["error"]["details"]
        if d["@type"].endswith("BadRequest")
        for v in d["fieldViolations"]
    ]
    assert field in [v["field"] for v in violations]
    engine = create_async_engine(stack.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        async with engine.connect() as db:
            row = (
                await db.execute(
                    text("SELECT status, body, last_error FROM webhook_events WHERE provider_event_id = :id"),
                    {"id": headers["svix-id"]},
                )
            ).one()
    finally:
        await engine.dispose()
    assert row.status == "failed"
    assert bytes(row.body) == body
    assert field in row.last_error


async def test_an_email_time_out_of_range_is_dropped_not_fatal(stack: Stack) -> None:
    body = encode(resend_event("wh-data-y1", data={"created_at": "0001-01-01T00:00:00+05:00"}))
    response = await stack.http.post(
        "/api/webhooks/resend",
        content=body,
        headers={**sign(body, now()), "content-type": "application/json"},
    )
    assert response.status_code == 200
    assert json.loads(response.text)["status"] == "WEBHOOK_EVENT_STATUS_PROCESSED"


def test_nul_fields_walks_maps_repeated_and_nested_messages() -> None:
    email = inbox_pb2.Email(recipients=["ok", NUL], tags={"fine": NUL, NUL: "x"}, subject=NUL)
    assert sorted(nul_fields(email)) == ["recipients[1]", "subject", "tags", "tags['fine']"]
    request = fleet_pb2.CreateCarRequest(car=fleet_pb2.Car(fees=[fleet_pb2.CarFee(name=NUL)]))
    assert list(nul_fields(request)) == ["car.fees[0].name"]
    assert list(nul_fields(fleet_pb2.ListCarsRequest(category="clean"))) == []
