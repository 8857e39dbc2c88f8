"""The gateway over real HTTP (uvicorn) against a real gRPC server answering from a script."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from exodrive.v1 import booking_pb2, fleet_pb2, inbox_pb2, money_pb2, webhook_pb2
from grpc_health.v1 import health, health_pb2
from test_gateway_upstream import ScriptedUpstream, build_server, rich_error

from server.gateway import GatewayServer, create_gateway_app
from server.gateway.http_status import HTTP_STATUS
from server.settings import Settings

ORIGIN = "https://app.exodrive.example"
GENERIC_MESSAGES = {
    grpc.StatusCode.UNAVAILABLE: "upstream unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "upstream deadline exceeded",
    grpc.StatusCode.CANCELLED: "upstream call cancelled",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Stack:
    def __init__(self) -> None:
        self.script = ScriptedUpstream()
        self.health = health.aio.HealthServicer()
        self.server = build_server(self.script, self.health)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        settings = Settings(cors_origins=[ORIGIN], gateway_max_body_bytes=4096)
        self.gateway = GatewayServer(create_gateway_app(settings, f"127.0.0.1:{self.port}"))
        self.http = httpx.AsyncClient(base_url=self.gateway.url)


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    stack = Stack()
    await stack.server.start()
    await stack.gateway.start()
    try:
        yield stack
    finally:
        await stack.http.aclose()
        await stack.gateway.stop()
        await stack.server.stop(None)


@pytest.fixture(autouse=True)
def _fresh_script(stack: Stack) -> None:
    stack.script.answers.clear()
    stack.script.seen.clear()


async def test_get_car_path_value_and_protojson_out(stack: Stack) -> None:
    car = fleet_pb2.Car(
        car_id="c-1",
        name="Huracán",
        daily_rate=money_pb2.Money(currency_code="USD", amount_minor=123456),
        discount_percent=10,
    )
    stack.script.answers["GetCar"] = lambda request, context: fleet_pb2.GetCarResponse(car=car)

    response = await stack.http.get("/v1/cars/c%2F1")

    assert response.status_code == 200
    assert stack.script.last().request == fleet_pb2.GetCarRequest(car_id="c/1")
    body = response.json()
    assert body["car"]["name"] == "Huracán"
    assert body["car"]["dailyRate"] == {"currencyCode": "USD", "amountMinor": "123456"}
    assert body["car"]["discountPercent"] == 10
    assert body["car"]["available"] is False  # unpopulated fields are written out
    assert response.headers["content-type"] == "application/json"


async def test_response_metadata_becomes_headers(stack: Stack) -> None:
    response = await stack.http.get("/v1/cars/abc")

    assert response.headers["x-trace-id"] == "0123456789abcdef0123456789abcdef"  # initial metadata
    assert response.headers["x-cache"] == "HIT"  # trailing metadata
    assert response.headers["x-ratelimit-limit"] == "60"
    assert response.headers["x-ratelimit-remaining"] == "59"
    assert response.headers["x-ratelimit-reset"] == "60"
    assert response.headers["x-response-time"] == "1.2ms"
    assert response.headers["ratelimit-policy"] == '"default";q=60'
    assert response.headers["ratelimit"] == '"default";r=59;t=60'


async def test_request_headers_travel_as_metadata(stack: Stack) -> None:
    response = await stack.http.get(
        "/v1/bookings/b-1",
        headers={
            "Authorization": "Bearer abc.def.ghi",
            "X-Booking-Token": "guest-token",
            "X-Trace-Id": "ABCDEF0123456789ABCDEF0123456789",
            "X-Forwarded-For": "203.0.113.9",
            "Grpc-Metadata-X-Client-Version": "web-1.2",
            "Grpc-Metadata-Content-Type": "text/evil",
        },
    )

    assert response.status_code == 200
    seen = stack.script.last()
    assert seen.request == booking_pb2.GetBookingRequest(booking_id="b-1")
    assert seen.metadata["authorization"] == "Bearer abc.def.ghi"
    assert seen.metadata["x-booking-token"] == "guest-token"
    assert seen.metadata["x-trace-id"] == "abcdef0123456789abcdef0123456789"
    assert seen.metadata["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert seen.metadata["x-client-version"] == "web-1.2"
    assert "text/evil" not in seen.metadata.values()


async def test_traceparent_gives_the_trace_id_and_a_malformed_id_is_replaced(stack: Stack) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await stack.http.get("/v1/cars/a", headers={"traceparent": parent, "X-Trace-Id": "not valid"})
    assert stack.script.last().metadata["x-trace-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert stack.script.last().metadata["traceparent"] == parent

    await stack.http.get("/v1/cars/a", headers={"X-Trace-Id": "x" * 500})
    generated = stack.script.last().metadata["x-trace-id"]
    assert len(generated) == 32
    assert generated != "x" * 32


async def test_query_parameters_dates_enums_and_names(stack: Stack) -> None:
    response = await stack.http.get(
        "/v1/cars/car-9/availability?startDate=2025-03-01&end_date=2025-03-05&unknown=1&car_id=ignored"
    )
    assert response.status_code == 200
    assert stack.script.last().request == fleet_pb2.GetCarAvailabilityRequest(
        car_id="car-9",
        start_date={"year": 2025, "month": 3, "day": 1},
        end_date={"year": 2025, "month": 3, "day": 5},
    )

    listed = await stack.http.get("/v1/bookings?status=BOOKING_STATUS_CONFIRMED&pageSize=5&pageToken=t")
    assert listed.status_code == 200
    assert stack.script.last().request == booking_pb2.ListBookingsRequest(
        status=booking_pb2.BOOKING_STATUS_CONFIRMED, page_size=5, page_token="t"
    )

    stats = await stack.http.get(
        "/v1/inbox/stats?startTime=2025-01-02T03:04:05Z&end_time=2025-02-01T00:00:00%2B01:00"
    )
    assert stats.status_code == 200
    request: Any = stack.script.last().request
    assert request.start_time.seconds == 1735787045
    assert request.end_time.ToJsonString() == "2025-01-31T23:00:00Z"

    cars = await stack.http.get("/v1/cars?featuredOnly=true&category=coupe")
    assert cars.status_code == 200
    assert stack.script.last().request == fleet_pb2.ListCarsRequest(featured_only=True, category="coupe")


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/v1/cars/x/availability?startDate=2025-13-01", "start_date"),
        ("/v1/cars/x/availability?startDate=01/02/2025", "start_date"),
        ("/v1/cars/x/availability?startDate=2025-03-01&startDate=2025-03-02", "start_date"),
        ("/v1/cars?pageSize=abc", "page_size"),
        ("/v1/cars?pageSize=99999999999", "page_size"),
        ("/v1/cars?featuredOnly=yes", "featured_only"),
        ("/v1/bookings?status=BOOKED", "status"),
        ("/v1/inbox/stats?startTime=yesterday", "start_time"),
    ],
)
async def test_bad_query_values_are_400_naming_the_field(stack: Stack, url: str, field: str) -> None:
    response = await stack.http.get(url)

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400
    assert body["error"]["code"] == "VALIDATION_ERROR"
    violations = [d for d in body["error"]["details"] if d["@type"].endswith("google.rpc.BadRequest")]
    assert violations[0]["fieldViolations"][0]["field"] == field
    assert body["error"]["traceId"] == response.headers["x-trace-id"]
    assert stack.script.seen == []  # never reached the server


async def test_create_with_body_field_answers_201(stack: Stack) -> None:
    stack.script.answers["CreateCar"] = lambda request, context: fleet_pb2.CreateCarResponse(car=request.car)

    response = await stack.http.post(
        "/v1/cars",
        json={"name": "F8", "dailyRate": {"currencyCode": "USD", "amountMinor": "99900"}, "extra": 1},
    )

    assert response.status_code == 201
    assert stack.script.last().request == fleet_pb2.CreateCarRequest(
        car=fleet_pb2.Car(name="F8", daily_rate=money_pb2.Money(currency_code="USD", amount_minor=99900))
    )
    assert response.json()["car"]["dailyRate"]["amountMinor"] == "99900"


async def test_body_star_and_custom_verb(stack: Stack) -> None:
    created = await stack.http.post(
        "/v1/bookings",
        json={"requestId": "r-1", "car_id": "car-1", "startDate": {"year": 2030, "month": 1, "day": 2}},
    )
    assert created.status_code == 201
    assert stack.script.last().request == booking_pb2.CreateBookingRequest(
        request_id="r-1", car_id="car-1", start_date={"year": 2030, "month": 1, "day": 2}
    )

    cancelled = await stack.http.post(
        "/v1/bookings/b-7:cancel", json={"reason": "plans changed", "bookingId": "x"}
    )
    assert cancelled.status_code == 200
    assert stack.script.last().method == "CancelBooking"
    # The path value wins over the body.
    assert stack.script.last().request == booking_pb2.CancelBookingRequest(
        booking_id="b-7", reason="plans changed"
    )

    transition = await stack.http.post(
        "/v1/bookings/b-7:transition", json={"status": "BOOKING_STATUS_ACTIVE"}
    )
    assert transition.status_code == 200
    assert stack.script.last().method == "UpdateBookingStatus"


async def test_patch_sets_path_and_body_field(stack: Stack) -> None:
    response = await stack.http.patch("/v1/cars/car-3", json={"featured": True})
    assert response.status_code == 200
    assert stack.script.last().request == fleet_pb2.UpdateCarRequest(
        car_id="car-3", car=fleet_pb2.Car(featured=True)
    )

    masked = await stack.http.patch("/v1/cars/car-3?updateMask=featured,dailyRate", json={"featured": True})
    assert masked.status_code == 200
    request: Any = stack.script.last().request
    assert list(request.update_mask.paths) == ["featured", "daily_rate"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/bookings", b"{not json", "body"),
        ("/v1/bookings", b"[1, 2]", "body"),
        ("/v1/bookings", b'{"startDate": {"year": "MMXXV"}}', "start_date.year"),
        ("/v1/bookings", b'{"startDate": "2025-01-01"}', "start_date"),
        ("/v1/cars", b'{"dailyRate": {"amountMinor": "12.5"}}', "car.daily_rate.amount_minor"),
        ("/v1/cars", b'"a string"', "car"),
        ("/v1/cars", b'{"fees": {}}', "car.fees"),
        ("/v1/bookings/b:transition", b'{"status": "FLYING"}', "status"),
        ("/v1/bookings", b"[" * 2000 + b"]" * 2000, "body"),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(stack: Stack, path: str, body: bytes, field: str) -> None:
    response = await stack.http.post(path, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400, response.text
    details = response.json()["error"]["details"]
    bad = next(d for d in details if d["@type"].endswith("BadRequest"))
    assert bad["fieldViolations"][0]["field"] == field


async def test_empty_body_is_an_empty_message(stack: Stack) -> None:
    response = await stack.http.post("/v1/bookings/b-1:cancel")
    assert response.status_code == 200
    assert stack.script.last().request == booking_pb2.CancelBookingRequest(booking_id="b-1")


async def test_webhook_raw_body_reaches_the_server_byte_identical(stack: Stack) -> None:
    raw = '{ "type":"email.delivered",\t"data" : {"subject": "Bienvenue à bord 🚗 — ünï"} }  \r\n\n'.encode()
    stack.script.answers["HandleResendEvent"] = lambda request, context: (
        webhook_pb2.HandleResendEventResponse(event_id="e-1")
    )

    response = await stack.http.post(
        "/api/webhooks/resend",
        content=raw,
        headers={
            "content-type": "application/json; charset=utf-8",
            "svix-id": "msg_1",
            "svix-timestamp": "1614265330",
            "svix-signature": "v1,abc= v1,def=",
            "webhook-id": "msg_1",
        },
    )

    assert response.status_code == 200
    assert response.json()["eventId"] == "e-1"
    assert response.json()["duplicate"] is False
    seen = stack.script.last()
    request: Any = seen.request
    assert request.body.data == raw
    assert request.body.content_type == "application/json; charset=utf-8"
    assert seen.metadata["svix-id"] == "msg_1"
    assert seen.metadata["svix-timestamp"] == "1614265330"
    assert seen.metadata["svix-signature"] == "v1,abc= v1,def="
    assert seen.metadata["webhook-id"] == "msg_1"


@pytest.mark.parametrize("code", list(grpc.StatusCode))
async def test_every_grpc_code_maps_like_grpc_gateway(stack: Stack, code: grpc.StatusCode) -> None:
    response = await stack.http.get("/v1/cars/x", headers={"Grpc-Metadata-X-Want-Code": code.name})

    expected = HTTP_STATUS[code]
    assert response.status_code == expected
    if code is not grpc.StatusCode.OK:
        body = response.json()
        assert body["status"] == expected
        assert body["error"]["code"] == code.name
        # A status the server sent without ErrorInfo is not one of its errors: gRPC's own text is
        # not shown; the caller gets a generic message and the ErrorInfo with the trace id.
        assert "asked for" not in response.text
        assert body["error"]["message"] == GENERIC_MESSAGES.get(code, "upstream call failed")
        assert response.headers["x-trace-id"] == body["error"]["traceId"]
        info = body["error"]["details"][0]
        assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        assert (info["reason"], info["metadata"]["trace_id"]) == (code.name, body["error"]["traceId"])


def test_status_table_is_grpc_gateways() -> None:
    assert len(HTTP_STATUS) == 17
    assert {c.name: s for c, s in HTTP_STATUS.items()} == {
        "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
        "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401,
        "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400,
        "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500,
    }  # fmt: skip


async def test_rich_error_body_carries_reason_details_and_retry(stack: Stack) -> None:
    stack.script.answers["CreateBooking"] = rich_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
        "too many bookings",
        violations=[("car_id", "must be a UUID")],
        retry_seconds=7,
    )

    response = await stack.http.post("/v1/bookings", json={})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    error = response.json()["error"]
    assert error["code"] == "RATE_LIMITED"
    assert error["message"] == "too many bookings"
    assert error["traceId"] == "f" * 32
    assert error["timestamp"].endswith("Z")
    kinds = {d["@type"].rsplit(".", 1)[1]: d for d in error["details"]}
    assert kinds["ErrorInfo"]["reason"] == "RATE_LIMITED"
    assert kinds["BadRequest"]["fieldViolations"] == [{"field": "car_id", "description": "must be a UUID"}]
    assert kinds["RetryInfo"]["retryDelay"] == "7s"


async def test_unknown_route_404_and_wrong_method_405(stack: Stack) -> None:
    missing = await stack.http.get("/v1/nothing/here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"

    wrong = await stack.http.delete("/v1/cars/abc")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, PATCH"
    assert wrong.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_body_size_limit(stack: Stack) -> None:
    response = await stack.http.post("/v1/bookings", content=b"{" + b" " * 5000 + b"}")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert stack.script.seen == []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    streamed = await stack.http.post("/v1/bookings", content=chunks())  # no Content-Length
    assert streamed.status_code == 413


async def test_deadline_from_grpc_timeout_or_default(stack: Stack) -> None:
    assert (await stack.http.get("/v1/cars/a", headers={"Grpc-Timeout": "1500m"})).status_code == 200
    remaining = stack.script.last().time_remaining
    assert remaining is not None
    assert 1.0 < remaining <= 1.6  # gRPC rounds deadlines up

    await stack.http.get("/v1/cars/a")
    remaining = stack.script.last().time_remaining
    assert remaining is not None
    assert 9.0 < remaining <= 10.1

    bad = await stack.http.get("/v1/cars/a", headers={"Grpc-Timeout": "soon"})
    assert bad.status_code == 400
    assert bad.json()["error"]["details"][1]["fieldViolations"][0]["field"] == "Grpc-Timeout"


async def test_a_slow_upstream_is_504(stack: Stack) -> None:
    async def slow(request: Any, context: Any) -> fleet_pb2.GetCarResponse:
        await asyncio.sleep(1)
        return fleet_pb2.GetCarResponse()

    stack.script.answers["GetCar"] = slow
    response = await stack.http.get("/v1/cars/a", headers={"Grpc-Timeout": "50m"})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "DEADLINE_EXCEEDED"


async def test_cors_for_configured_origins_only(stack: Stack) -> None:
    preflight = await stack.http.options(
        "/v1/bookings",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-booking-token",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-methods"] == "GET, POST, PUT, PATCH, DELETE"
    assert preflight.headers["access-control-allow-headers"] == "authorization, content-type, x-booking-token"

    simple = await stack.http.get("/v1/cars/a", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert simple.headers["access-control-expose-headers"] == (
        "X-Trace-Id, X-Cache, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, "
        "Retry-After, X-Response-Time, RateLimit, RateLimit-Policy"
    )

    other = await stack.http.get("/v1/cars/a", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_health_ready_metrics_and_docs(stack: Stack) -> None:
    assert (await stack.http.get("/healthz")).json() == {"status": "ok"}

    await stack.health.set("readiness", health_pb2.HealthCheckResponse.SERVING)
    ready = await stack.http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "SERVING"})
    await stack.health.set("readiness", health_pb2.HealthCheckResponse.NOT_SERVING)
    not_ready = await stack.http.get("/readyz")
    assert (not_ready.status_code, not_ready.json()) == (503, {"status": "NOT_SERVING"})

    await stack.http.get("/v1/cars/metrics-probe")
    metrics = await stack.http.get("/metrics")
    assert metrics.status_code == 200
    assert (
        'exodrive_gateway_requests_total{method="GET",route="/v1/cars/{car_id}",status="200"}' in metrics.text
    )

    docs = await stack.http.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text


async def test_upstream_down_is_503_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()
    gateway = GatewayServer(create_gateway_app(Settings(), f"127.0.0.1:{port}"))
    await gateway.start()
    script = ScriptedUpstream()
    server = build_server(script, health.aio.HealthServicer())
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            down = await http.get("/v1/cars/a")
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == 503
            assert body["error"]["code"] == "UNAVAILABLE"
            assert body["error"]["message"] == "upstream unavailable"
            assert body["error"]["traceId"] == down.headers["x-trace-id"]
            assert down.headers["retry-after"] == "1"
            info, retry = body["error"]["details"]
            assert (info["reason"], info["domain"]) == ("UNAVAILABLE", "exodrive.com")
            assert info["metadata"] == {"trace_id": down.headers["x-trace-id"]}
            assert retry == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}
            # Neither the upstream's address nor gRPC's own words reach the caller; the log has them.
            for leak in (str(port), "127.0.0.1", "ipv4", "connect", "addresses"):
                assert leak not in down.text
            logged = [r for r in caplog.records if r.getMessage() == "upstream call failed"]
            assert logged
            assert str(port) in logged[-1].detail  # type: ignore[attr-defined]
            assert logged[-1].trace_id == down.headers["x-trace-id"]  # type: ignore[attr-defined]
            assert (await http.get("/readyz")).status_code == 503

            server.add_insecure_port(f"127.0.0.1:{port}")
            await server.start()
            for _ in range(60):
                up = await http.get("/v1/cars/a")
                if up.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert up.status_code == 200
            assert json.loads(up.content) == {}
    finally:
        await gateway.stop()
        await server.stop(None)


async def test_inbox_and_webhook_admin_routes_reach_their_methods(stack: Stack) -> None:
    stack.script.answers["ListEmails"] = lambda request, context: inbox_pb2.ListEmailsResponse(total_size=3)
    listed = await stack.http.get("/v1/inbox/emails?search=50%25_off&status=EMAIL_STATUS_BOUNCED")
    assert listed.json()["totalSize"] == "3"
    assert stack.script.last().request == inbox_pb2.ListEmailsRequest(
        search="50%_off", status=inbox_pb2.EMAIL_STATUS_BOUNCED
    )
    assert (await stack.http.get("/v1/inbox/emails/e-1")).status_code == 200
    assert stack.script.last().request == inbox_pb2.GetEmailRequest(email_id="e-1")
    assert (await stack.http.get("/v1/webhooks/events?pageSize=2")).status_code == 200
    assert stack.script.last().request == webhook_pb2.ListWebhookEventsRequest(page_size=2)
    assert (await stack.http.post("/v1/webhooks/events/ev-1:replay", json={})).status_code == 200
    assert stack.script.last().request == webhook_pb2.ReplayWebhookEventRequest(event_id="ev-1")


async def test_odd_paths_are_transcoded_not_plain_text(stack: Stack) -> None:
    response = await stack.http.get("/v1/cars/%0Aodd")
    assert response.status_code == 200
    assert stack.script.last().request == fleet_pb2.GetCarRequest(car_id="\nodd")
    missing = await stack.http.get("/v1/%0A/nothing")
    assert missing.headers["content-type"] == "application/json"
    assert missing.status_code == 404


async def _keep_alive_latencies(stack: Stack, path: str, rounds: int) -> tuple[list[float], bytes]:
    """Seconds per request sent one after another on one kept-alive connection, and the last body."""
    reader, writer = await asyncio.open_connection(stack.gateway.host, stack.gateway.port)
    timings: list[float] = []
    body = b""
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: gateway\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert length is not None, head
            body = await reader.readexactly(int(length.group(1)))
            timings.append(time.perf_counter() - started)
    finally:
        writer.close()
    return timings, body


@pytest.mark.parametrize("path", ["/healthz", "/v1/cars/keep-alive"])
async def test_kept_alive_requests_are_not_held_back_by_nagle(stack: Stack, path: str) -> None:
    # A response is written as head then body; without TCP_NODELAY the body waited for the
    # client's delayed ACK of the head, about 40 ms on every request after a connection's first.
    timings, body = await _keep_alive_latencies(stack, path, rounds=8)

    assert body == (b'{"status":"ok"}' if path == "/healthz" else b"{}")
    assert statistics.median(timings[1:]) < 0.02, [f"{t * 1000:.1f} ms" for t in timings]
