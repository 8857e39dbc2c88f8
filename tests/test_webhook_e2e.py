"""Resend deliveries and the admin inbox end to end: real HTTP through the gateway, the real gRPC
server with its interceptors, PostgreSQL and Redis, with real Svix signatures."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import httpx
import pytest
from exodrive.v1 import inbox_pb2, inbox_pb2_grpc
from google.rpc import error_details_pb2, status_pb2
from pydantic import SecretStr
from resend_samples import SECRET, encode, event, now, sign

from server.auth import mint_token
from server.bootstrap import build_application
from server.gateway import GatewayServer, create_gateway_app
from server.grpc_server import GrpcServer
from server.settings import Settings
from services.principal import Role

WEBHOOK = "/api/webhooks/resend"


def to(resend_id: str) -> str:
    """A recipient address unique to one email, so the inbox can be filtered down to it."""
    return f"{resend_id}@example.com"


class Stack:
    def __init__(self, http: httpx.AsyncClient, channel: grpc.aio.Channel, settings: Settings) -> None:
        self.http = http
        self.channel = channel
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
        self.admin_token = mint_token(secret, role=Role.ADMIN, subject="admin-1")
        self.admin = {"Authorization": f"Bearer {self.admin_token}"}
        self.customer = {"Authorization": f"Bearer {mint_token(secret, role=Role.CUSTOMER, subject='c-1')}"}

    async def deliver(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        headers = headers if headers is not None else sign(body, now())
        return await self.http.post(
            WEBHOOK, content=body, headers={**headers, "content-type": "application/json"}
        )

    async def email(self, resend_id: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        params = params or {"recipient": to(resend_id)}
        response = await self.http.get("/v1/inbox/emails", params=params, headers=self.admin)
        assert response.status_code == 200
        emails = [e for e in response.json().get("emails", []) if e["providerEmailId"] == resend_id]
        assert len(emails) == 1
        return emails[0]


@pytest.fixture(scope="module")
async def stack(migrated_settings: Settings) -> AsyncIterator[Stack]:
    settings = migrated_settings.model_copy(update={"resend_webhook_secrets": [SecretStr(SECRET)]})
    app = await build_application(settings)
    server = GrpcServer(app, host="127.0.0.1", port=0, grace_seconds=1.0)
    await server.start()
    gateway = GatewayServer(create_gateway_app(settings, server.address))
    await gateway.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            yield Stack(http, channel, settings)
    finally:
        await channel.close()
        await gateway.stop()
        await server.stop(grace_seconds=1.0)
        await app.close()


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("email.sent", "EMAIL_STATUS_SENT"),
        ("email.delivery_delayed", "EMAIL_STATUS_DELIVERY_DELAYED"),
        ("email.delivered", "EMAIL_STATUS_DELIVERED"),
        ("email.opened", "EMAIL_STATUS_OPENED"),
        ("email.clicked", "EMAIL_STATUS_CLICKED"),
        ("email.bounced", "EMAIL_STATUS_BOUNCED"),
        ("email.complained", "EMAIL_STATUS_COMPLAINED"),
        ("email.failed", "EMAIL_STATUS_FAILED"),
    ],
)
async def test_lifecycle_through_the_gateway(stack: Stack, event_type: str, status: str) -> None:
    resend_id = f"e2e-{uuid.uuid4()}"
    t0 = now() - timedelta(minutes=1)
    first = await stack.deliver(encode(event("email.sent", resend_id, t0, to=to(resend_id))))
    assert first.status_code == 200
    assert first.json()["status"] == "WEBHOOK_EVENT_STATUS_PROCESSED"
    assert "x-ratelimit-limit" in first.headers
    if event_type != "email.sent":
        later = await stack.deliver(
            encode(event(event_type, resend_id, t0 + timedelta(seconds=1), to=to(resend_id)))
        )
        assert later.status_code == 200
    email = await stack.email(resend_id)
    assert email["status"] == status
    assert email["lastEventType"] == event_type
    assert email["sender"] == "bookings@exodrive.com"

    detail = await stack.http.get(f"/v1/inbox/emails/{email['emailId']}", headers=stack.admin)
    assert detail.status_code == 200
    expected = ["email.sent"] if event_type == "email.sent" else ["email.sent", event_type]
    assert [e["eventType"] for e in detail.json()["events"]] == expected


async def test_redelivery_is_acknowledged_as_duplicate(stack: Stack) -> None:
    body = encode(event("email.delivered", f"e2e-{uuid.uuid4()}", now()))
    headers = sign(body, now())
    first = (await stack.deliver(body, headers)).json()
    again = await stack.deliver(body, headers)
    assert again.status_code == 200
    assert again.json()["eventId"] == first["eventId"]
    assert again.json()["duplicate"] is True


async def test_raw_bytes_verify_untouched(stack: Stack) -> None:
    # Whitespace, unicode and a trailing newline: re-serialising would break the signature.
    resend_id = f"e2e-{uuid.uuid4()}"
    head = f'{{ "type" : "email.sent",\n\t"created_at": "{now().isoformat()}",\r\n '
    data = f'"data": {{"email_id": "{resend_id}", "from": "Zoë Ærø <bookings@exodrive.com>", '
    tail = '"to": ["Ünïcode@example.com"], "subject": "Grüße ✓"}}\n'
    body = (head + data + tail).encode()
    response = await stack.deliver(body)
    assert response.status_code == 200
    email = await stack.email(resend_id, {"search": "grüße ✓"})
    assert email["subject"] == "Grüße ✓"
    assert email["recipients"] == ["Ünïcode@example.com"]
    listed = await stack.http.get("/v1/webhooks/events", params={"pageSize": 5}, headers=stack.admin)
    stored = next(e for e in listed.json()["events"] if e["eventId"] == response.json()["eventId"])
    assert base64.b64decode(stored["body"]) == body


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: {**h, "svix-signature": "v1,AAAA" + h["svix-signature"][7:]},
        lambda h: {k: v for k, v in h.items() if k != "svix-signature"},
        lambda h: {**h, "svix-timestamp": str(int(h["svix-timestamp"]) - 301)},
        lambda h: {},
    ],
)
async def test_bad_signature_is_401(stack: Stack, mutate: Any) -> None:
    body = encode(event("email.sent", f"e2e-{uuid.uuid4()}", now()))
    response = await stack.deliver(body, mutate(sign(body, now())))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_SIGNATURE"


async def test_malformed_signed_body_is_400_and_visible_to_admins(stack: Stack) -> None:
    body = encode({"type": "email.sent", "created_at": now().isoformat(), "data": {"to": ["x@example.com"]}})
    headers = sign(body, now())
    response = await stack.deliver(body, headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    violations = [v for d in error["details"] for v in d.get("fieldViolations", [])]
    assert violations[0]["field"] == "body.data.email_id"
    listed = await stack.http.get(
        "/v1/webhooks/events",
        params={"status": "WEBHOOK_EVENT_STATUS_FAILED", "pageSize": 100},
        headers=stack.admin,
    )
    assert listed.status_code == 200
    failed = [e for e in listed.json()["events"] if e["providerEventId"] == headers["svix-id"]]
    assert len(failed) == 1
    assert "body.data.email_id" in failed[0]["lastError"]
    replay = await stack.http.post(
        f"/v1/webhooks/events/{failed[0]['eventId']}:replay", json={}, headers=stack.admin
    )
    assert replay.status_code == 200
    assert replay.json()["event"]["attempts"] == 2
    assert replay.json()["event"]["status"] == "WEBHOOK_EVENT_STATUS_FAILED"


@pytest.mark.parametrize(
    ("path", "params"),
    [("/v1/inbox/emails", {}), ("/v1/inbox/stats", {}), ("/v1/webhooks/events", {})],
)
async def test_inbox_is_admin_only(stack: Stack, path: str, params: dict[str, str]) -> None:
    assert (await stack.http.get(path, params=params)).status_code == 401
    assert (await stack.http.get(path, params=params, headers=stack.customer)).status_code == 403
    assert (await stack.http.get(path, params=params, headers=stack.admin)).status_code == 200


async def test_stats_over_http(stack: Stack) -> None:
    start = now() - timedelta(seconds=1)
    resend_id = f"e2e-{uuid.uuid4()}"
    await stack.deliver(encode(event("email.sent", resend_id, now())))
    await stack.deliver(encode(event("email.delivered", resend_id, now() + timedelta(seconds=1))))
    response = await stack.http.get(
        "/v1/inbox/stats", params={"startTime": start.isoformat().replace("+00:00", "Z")}, headers=stack.admin
    )
    assert response.status_code == 200
    stats = response.json()
    assert int(stats["total"]) >= 1
    assert stats["deliveryRate"] > 0


def _field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)  # type: ignore[arg-type]
            fields = []
            for detail in status.details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    fields.extend(v.field for v in bad.field_violations)
            return fields
    return []


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("GetEmail", inbox_pb2.GetEmailRequest(email_id="not-a-uuid"), "email_id"),
        ("GetEmail", inbox_pb2.GetEmailRequest(), "email_id"),
        ("ListEmails", inbox_pb2.ListEmailsRequest(page_size=100000), "page_size"),
        ("ListEmails", inbox_pb2.ListEmailsRequest(page_size=-5), "page_size"),
        ("ListEmails", inbox_pb2.ListEmailsRequest(status=99), "status"),  # type: ignore[arg-type]
        ("ListEmails", inbox_pb2.ListEmailsRequest(booking_id="x"), "booking_id"),
        ("ListEmails", inbox_pb2.ListEmailsRequest(page_token="%%%"), "page_token"),
        ("ListEmails", inbox_pb2.ListEmailsRequest(search="x" * 500), "search"),
        ("GetEmailStats", inbox_pb2.GetEmailStatsRequest(start_time={"seconds": 10**12}), "start_time"),
    ],
)
async def test_malformed_grpc_requests_are_invalid_argument(
    stack: Stack, method: str, request_message: Any, field: str
) -> None:
    stub = inbox_pb2_grpc.InboxServiceStub(stack.channel)
    metadata = (("authorization", f"Bearer {stack.admin_token}"),)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, method)(request_message, metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field_violations(caught.value) == [field]
