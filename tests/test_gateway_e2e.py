"""Every route of the OpenAPI document, called through real HTTP against the real server
(PostgreSQL, Redis, interceptors), with status and headers asserted."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.auth import mint_token
from server.bootstrap import build_application
from server.gateway import GatewayServer, create_gateway_app
from server.gateway.command import LOOPBACK_PROXIES, run_gateway, trust_own_gateway
from server.gateway.openapi import openapi_document
from server.gateway.routes import RouteTable
from server.grpc_server import GrpcServer
from server.policy import PolicyTable
from server.settings import Settings
from services.principal import Role

CALLED: set[tuple[str, str]] = set()


class Api:
    def __init__(self, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.settings = settings
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
        self.admin = {"Authorization": f"Bearer {mint_token(secret, role=Role.ADMIN, subject='admin-1')}"}
        self.customer = {
            "Authorization": f"Bearer {mint_token(secret, role=Role.CUSTOMER, subject='customer-1')}"
        }

    async def call(
        self, method: str, route: str, url: str, *, budget: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """The response, checked for what every answer carries: the trace id (also in an error
        body) and, unless `budget` is False (refused by authentication, which comes before the
        limiter), the rate-limit budget."""
        CALLED.add((method.lower(), route))
        response = await self.http.request(method, url, **kwargs)
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-trace-id"]), response.headers
        if response.status_code >= 400:
            assert response.json()["error"]["traceId"] == response.headers["x-trace-id"]
        if not budget:
            assert "x-ratelimit-limit" not in response.headers
            return response
        limit = int(response.headers["x-ratelimit-limit"])
        remaining = int(response.headers["x-ratelimit-remaining"])
        assert 0 <= remaining < limit
        reset = response.headers["x-ratelimit-reset"]
        assert response.headers["ratelimit-policy"] == f'"default";q={limit}'
        assert response.headers["ratelimit"] == f'"default";r={remaining};t={reset}'
        return response


@pytest.fixture
async def api(running_server: Any, migrated_settings: Settings) -> AsyncIterator[Api]:
    gateway = GatewayServer(create_gateway_app(migrated_settings, running_server.address))
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            yield Api(http, migrated_settings)
    finally:
        await gateway.stop()


def _date(day: date) -> dict[str, int]:
    return {"year": day.year, "month": day.month, "day": day.day}


async def test_every_route_through_the_real_server(api: Api) -> None:
    slug = f"gw-{uuid.uuid4().hex[:8]}"
    car = {
        "slug": slug,
        "name": "Gateway GT",
        "category": "coupe",
        "dailyRate": {"currencyCode": "USD", "amountMinor": "5000"},
        "deposit": {"currencyCode": "USD", "amountMinor": "100000"},
        "discountPercent": 10,
        "minimumDays": 1,
        "fees": [{"name": "Delivery", "amount": {"currencyCode": "USD", "amountMinor": "4000"}}],
        "available": True,
    }
    anonymous_create = await api.call("POST", "/v1/cars", "/v1/cars", json=car, budget=False)
    assert anonymous_create.status_code == 401
    assert anonymous_create.json()["error"]["code"] == "UNAUTHENTICATED"

    created = await api.call("POST", "/v1/cars", "/v1/cars", json=car, headers=api.admin)
    assert created.status_code == 201, created.text
    car_id = created.json()["car"]["carId"]
    assert created.json()["car"]["dailyRate"] == {"currencyCode": "USD", "amountMinor": "5000"}
    assert "x-cache" not in created.headers  # writes are never cached
    assert created.headers["x-ratelimit-limit"] == str(api.settings.rate_limit_admin)

    listed = await api.call("GET", "/v1/cars", "/v1/cars?pageSize=100")
    assert listed.status_code == 200
    assert listed.headers["x-ratelimit-limit"] == str(api.settings.rate_limit_public)
    assert slug in [c["slug"] for c in listed.json()["cars"]]
    relisted = await api.call("GET", "/v1/cars", "/v1/cars?pageSize=100")
    assert (listed.headers["x-cache"], relisted.headers["x-cache"]) == ("MISS", "HIT")
    assert relisted.json() == listed.json()

    first = await api.call("GET", "/v1/cars/{car_id}", f"/v1/cars/{car_id}")
    second = await api.call("GET", "/v1/cars/{car_id}", f"/v1/cars/{car_id}")
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.json() == first.json()
    assert second.json()["car"]["slug"] == slug

    missing = await api.call("GET", "/v1/cars/{car_id}", f"/v1/cars/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "CAR_NOT_FOUND"
    bad_id = await api.call("GET", "/v1/cars/{car_id}", "/v1/cars/not-a-uuid")
    assert bad_id.status_code == 400
    assert bad_id.json()["error"]["code"] == "VALIDATION_ERROR"

    start = date.today() + timedelta(days=30)
    end = start + timedelta(days=4)
    span = f"startDate={start.isoformat()}&endDate={end.isoformat()}"
    availability = await api.call(
        "GET", "/v1/cars/{car_id}/availability", f"/v1/cars/{car_id}/availability?{span}"
    )
    assert availability.status_code == 200, availability.text
    assert availability.json()["available"] is True
    assert availability.headers["x-cache"] == "MISS"

    quote = await api.call("GET", "/v1/cars/{car_id}/quote", f"/v1/cars/{car_id}/quote?{span}")
    assert quote.status_code == 200, quote.text
    # 50.00 x 4 = 200.00; fees 40.00 -> 240.00; -10 % -> 216.00; tax 21.60; total 237.60.
    assert quote.json()["quote"]["total"] == {"currencyCode": "USD", "amountMinor": "23760"}
    assert quote.headers["x-cache"] == "MISS"

    updated = await api.call(
        "PATCH", "/v1/cars/{car_id}", f"/v1/cars/{car_id}?updateMask=featured", json={"featured": True},
        headers=api.admin,
    )  # fmt: skip
    assert updated.status_code == 200, updated.text
    assert updated.json()["car"]["featured"] is True
    # The update dropped the cached car: the next read is a miss showing the change.
    reread = await api.call("GET", "/v1/cars/{car_id}", f"/v1/cars/{car_id}")
    assert reread.headers["x-cache"] == "MISS"
    assert reread.json()["car"]["featured"] is True

    booking = {
        "requestId": str(uuid.uuid4()),
        "carId": car_id,
        "startDate": _date(start),
        "endDate": _date(end),
        "contact": {"fullName": "Ada Guest", "email": "ada@example.com", "phone": "+15555550100"},
    }
    made = await api.call("POST", "/v1/bookings", "/v1/bookings", json=booking)
    assert made.status_code == 201, made.text
    booking_id = made.json()["booking"]["bookingId"]
    token = made.json()["accessToken"]
    assert made.json()["booking"]["price"]["total"]["amountMinor"] == "23760"
    assert "x-cache" not in made.headers
    assert made.headers["x-ratelimit-limit"] == str(api.settings.rate_limit_booking_create)
    # The booking dropped the car's cached availability, which now shows the days taken.
    after = await api.call("GET", "/v1/cars/{car_id}/availability", f"/v1/cars/{car_id}/availability?{span}")
    assert after.headers["x-cache"] == "MISS"
    assert after.json()["available"] is False

    taken = await api.call(
        "POST", "/v1/bookings", "/v1/bookings", json={**booking, "requestId": str(uuid.uuid4())}
    )
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "CAR_UNAVAILABLE"

    unowned = await api.call("GET", "/v1/bookings/{booking_id}", f"/v1/bookings/{booking_id}")
    assert unowned.status_code == 403
    assert unowned.json()["error"]["code"] == "PERMISSION_DENIED"
    read = await api.call(
        "GET", "/v1/bookings/{booking_id}", f"/v1/bookings/{booking_id}", headers={"X-Booking-Token": token}
    )
    assert read.status_code == 200, read.text
    assert read.json()["booking"]["status"] == "BOOKING_STATUS_PENDING"

    mine = await api.call(
        "GET", "/v1/bookings", "/v1/bookings?status=BOOKING_STATUS_PENDING", headers=api.customer
    )
    assert mine.status_code == 200, mine.text
    assert booking_id not in [b["bookingId"] for b in mine.json()["bookings"]]  # a guest's, not theirs
    everyone = await api.call("GET", "/v1/bookings", f"/v1/bookings?carId={car_id}", headers=api.admin)
    assert [b["bookingId"] for b in everyone.json()["bookings"]] == [booking_id]

    confirmed = await api.call(
        "POST", "/v1/bookings/{booking_id}:transition", f"/v1/bookings/{booking_id}:transition",
        json={"status": "BOOKING_STATUS_CONFIRMED", "reason": "paid"}, headers=api.admin,
    )  # fmt: skip
    assert confirmed.status_code == 200, confirmed.text
    illegal = await api.call(
        "POST", "/v1/bookings/{booking_id}:transition", f"/v1/bookings/{booking_id}:transition",
        json={"status": "BOOKING_STATUS_COMPLETED"}, headers=api.admin,
    )  # fmt: skip
    assert illegal.status_code == 400
    assert illegal.json()["error"]["code"] == "INVALID_STATE_TRANSITION"

    cancelled = await api.call(
        "POST", "/v1/bookings/{booking_id}:cancel", f"/v1/bookings/{booking_id}:cancel",
        json={"reason": "plans changed"}, headers={"X-Booking-Token": token},
    )  # fmt: skip
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["booking"]["status"] == "BOOKING_STATUS_CANCELLED"
    released = await api.call(
        "GET", "/v1/cars/{car_id}/availability", f"/v1/cars/{car_id}/availability?{span}"
    )
    assert (released.headers["x-cache"], released.json()["available"]) == ("MISS", True)

    emails = await api.call("GET", "/v1/inbox/emails", "/v1/inbox/emails?search=50%25_off", headers=api.admin)
    assert emails.status_code == 200, emails.text
    assert emails.json()["totalSize"] == "0"
    forbidden = await api.call(
        "GET", "/v1/inbox/emails", "/v1/inbox/emails", headers=api.customer, budget=False
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "PERMISSION_DENIED"
    email = await api.call(
        "GET", "/v1/inbox/emails/{email_id}", f"/v1/inbox/emails/{uuid.uuid4()}", headers=api.admin
    )
    assert email.status_code == 404
    assert email.json()["error"]["code"] == "EMAIL_NOT_FOUND"
    stats = await api.call(
        "GET", "/v1/inbox/stats", "/v1/inbox/stats?startTime=2020-01-01T00:00:00Z", headers=api.admin
    )
    assert stats.status_code == 200, stats.text
    # protojson: camelCase names, every field written, int64 as a string.
    assert set(stats.json()) == {
        "total", "statusCounts", "typeCounts", "deliveryRate", "openRate", "bounceRate", "complaintRate"
    }  # fmt: skip
    assert stats.json()["total"].isdigit()

    unsigned = await api.call(
        "POST", "/api/webhooks/resend", "/api/webhooks/resend", content=b'{"type": "email.sent"}\n',
        budget=False,  # refused before the limiter: an unproven delivery spends no provider budget
        headers={"content-type": "application/json", "svix-id": "msg_x", "svix-timestamp": "1",
                 "svix-signature": "v1,AAAA"},
    )  # fmt: skip
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["code"] == "INVALID_SIGNATURE"
    events = await api.call("GET", "/v1/webhooks/events", "/v1/webhooks/events?pageSize=5", headers=api.admin)
    assert events.status_code == 200, events.text
    assert set(events.json()) == {"events", "nextPageToken"}
    assert len(events.json()["events"]) <= 5
    replay = await api.call(
        "POST", "/v1/webhooks/events/{event_id}:replay", f"/v1/webhooks/events/{uuid.uuid4()}:replay",
        json={}, headers=api.admin,
    )  # fmt: skip
    assert replay.status_code == 404
    assert replay.json()["error"]["code"] == "WEBHOOK_EVENT_NOT_FOUND"

    documented = {
        (method, path)
        for path, item in openapi_document(RouteTable(PolicyTable()))["paths"].items()
        for method in item
    }
    assert documented <= CALLED, documented - CALLED


async def test_the_gateway_command_serves_alone_then_stops_on_sigterm(running_server: Any) -> None:
    command = Path(sys.executable).with_name("exodrive")
    process = await asyncio.create_subprocess_exec(
        str(command), "gateway", "--upstream", running_server.address, "--http-port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()  # type: ignore[union-attr]
        found = re.fullmatch(r"gateway on (http://127\.0\.0\.1:\d+) -> gRPC (\S+)\n", banner)
        assert found is not None, banner
        assert found.group(2) == running_server.address
        async with httpx.AsyncClient(base_url=found.group(1)) as http:
            await http.get("/v1/cars?pageSize=1")
            listed = await http.get("/v1/cars?pageSize=1")
            assert listed.status_code == 200, listed.text
            assert listed.headers["x-cache"] == "HIT"
            assert re.fullmatch(r"[0-9a-f]{32}", listed.headers["x-trace-id"])
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()) == (200, {"status": "SERVING"})
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_gateway_command_with_its_upstream_down_leaks_no_address() -> None:
    with socket.socket() as probe:  # a port nothing listens on: the upstream is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = Path(sys.executable).with_name("exodrive")
    process = await asyncio.create_subprocess_exec(
        str(command), "gateway", "--upstream", f"127.0.0.1:{port}", "--http-port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()  # type: ignore[union-attr]
        found = re.fullmatch(r"gateway on (http://127\.0\.0\.1:\d+) -> gRPC (\S+)\n", banner)
        assert found is not None, banner
        async with httpx.AsyncClient(base_url=found.group(1)) as http:
            down = await http.get("/v1/cars?pageSize=1")
        assert down.status_code == 503
        error = down.json()["error"]
        assert (error["code"], error["message"]) == ("UNAVAILABLE", "upstream unavailable")
        assert error["traceId"] == down.headers["x-trace-id"]
        assert str(port) not in down.text
        assert "127.0.0.1" not in down.text
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
        logged = (await process.stderr.read()).decode()  # type: ignore[union-attr]
        assert "upstream call failed" in logged  # the detail went to the log
        assert str(port) in logged
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_redis_down_answers_x_cache_bypass_through_the_gateway(migrated_settings: Settings) -> None:
    with socket.socket() as probe:  # a port nothing listens on: Redis is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = migrated_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    server = GrpcServer(await build_application(settings), host="127.0.0.1", port=0)
    await server.start()
    gateway = GatewayServer(create_gateway_app(settings, server.address))
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            for _ in range(2):  # never a hit: nothing is stored
                listed = await http.get("/v1/cars?pageSize=1")
                assert listed.status_code == 200, listed.text
                assert listed.headers["x-cache"] == "BYPASS"
                # The limiter fell back to its in-process window and still reports the budget.
                assert listed.headers["x-ratelimit-limit"] == str(settings.rate_limit_public)
    finally:
        await gateway.stop()
        await server.stop(grace_seconds=1.0)


async def test_run_gateway_serves_until_sigterm_then_leaves_the_signals_alone(
    running_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    task = asyncio.create_task(run_gateway(Settings(http_port=0), running_server.address))
    banner = ""
    for _ in range(200):
        banner += capsys.readouterr().out
        if banner or task.done():
            break
        await asyncio.sleep(0.01)
    found = re.fullmatch(r"gateway on (http://127\.0\.0\.1:\d+) -> gRPC (\S+)\n", banner)
    assert found is not None, banner
    async with httpx.AsyncClient(base_url=found.group(1)) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}

    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 10)
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler went with the gateway


def test_serve_trusts_its_own_loopback_gateway_once() -> None:
    settings = Settings(trusted_proxies=["10.0.0.0/8"])
    trusted = trust_own_gateway(settings)
    assert trusted.trusted_proxies == ["10.0.0.0/8", *LOOPBACK_PROXIES]
    assert trust_own_gateway(trusted) is trusted
    assert settings.trusted_proxies == ["10.0.0.0/8"]  # the given settings are left as they were
