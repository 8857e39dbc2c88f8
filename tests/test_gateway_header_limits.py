"""Oversized request headers through the gateway to the real server: refused by the gateway with
431 naming the header, never a gRPC metadata refusal passed off as a rate limit; and a client's
X-Forwarded-For chain forwarded only up to its rightmost hops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from grpc_health.v1 import health
from test_gateway_upstream import ScriptedUpstream, build_server

from server.bootstrap import build_application
from server.gateway import GatewayServer, create_gateway_app
from server.gateway.headers import MAX_FORWARDED_HOPS, MAX_METADATA_BYTES
from server.grpc_server import GrpcServer
from server.settings import Settings


@dataclass
class Real:
    http: httpx.AsyncClient


@pytest.fixture(scope="module")
async def real(migrated_settings: Settings) -> AsyncIterator[Real]:
    settings = migrated_settings.model_copy(update={"rate_limit_enabled": False})
    app = await build_application(settings)
    server = GrpcServer(app, host="127.0.0.1", port=0, grace_seconds=1.0)
    await server.start()
    gateway = GatewayServer(create_gateway_app(settings, server.address))
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            yield Real(http)
    finally:
        await gateway.stop()
        await server.stop(grace_seconds=1.0)


def _violations(body: dict[str, Any]) -> list[str]:
    return [
        v["field"]
        for d in body["error"]["details"]
        if d["@type"].endswith("BadRequest")
        for v in d["fieldViolations"]
    ]


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Authorization", "Bearer " + "a" * 20_000),
        # Between gRPC's soft (8 KiB) and hard (16 KiB) limits the server refuses at random.
        ("Authorization", "Bearer " + "a" * 10_000),
        ("Grpc-Metadata-Foo", "b" * 20_000),
        ("X-Booking-Token", "c" * 9_000),
    ],
)
async def test_oversized_forwarded_headers_are_431_naming_the_header(
    real: Real, header: str, value: str
) -> None:
    for _ in range(5):  # every time, not by chance
        response = await real.http.get("/v1/cars?pageSize=1", headers={header: value})
        assert response.status_code == 431, response.text
        body = response.json()
        assert body["status"] == 431
        assert body["error"]["code"] == "REQUEST_HEADER_FIELDS_TOO_LARGE"
        assert _violations(body) == [header.lower()]
        assert str(MAX_METADATA_BYTES) in body["error"]["message"]
        assert body["error"]["traceId"] == response.headers["x-trace-id"]
        assert "x-ratelimit-limit" not in response.headers


async def test_headers_just_under_the_budget_reach_the_server_every_time(real: Real) -> None:
    token = "Bearer " + "a" * 6_000
    for _ in range(20):
        response = await real.http.get("/v1/cars?pageSize=1", headers={"Authorization": token})
        # Reached the server, which judged the token: never a metadata refusal.
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"


async def test_the_budget_is_exact_and_safe_below_the_servers_limit(real: Real) -> None:
    # Counted as gRPC counts: name + value + 32 per entry. Beside Authorization the gateway sends
    # x-trace-id (10 + 32 + 32) and x-forwarded-for with the peer (15 + 9 + 32).
    fitting = MAX_METADATA_BYTES - (10 + 32 + 32) - (15 + 9 + 32) - (13 + 32)
    for _ in range(20):
        response = await real.http.get("/v1/cars?pageSize=1", headers={"Authorization": "a" * fitting})
        assert response.status_code == 401, response.text  # the server judged it, every time
    over = await real.http.get("/v1/cars?pageSize=1", headers={"Authorization": "a" * (fitting + 1)})
    assert over.status_code == 431


async def test_a_huge_forwarded_chain_is_answered_not_refused(real: Real) -> None:
    chain = ", ".join(f"10.{i // 250}.{i % 250}.1" for i in range(3000))
    response = await real.http.get("/v1/cars?pageSize=1", headers={"X-Forwarded-For": chain})
    assert response.status_code == 200, response.text
    assert "cars" in response.json()


@pytest.fixture(scope="module")
async def scripted() -> AsyncIterator[tuple[ScriptedUpstream, httpx.AsyncClient]]:
    script = ScriptedUpstream()
    server = build_server(script, health.aio.HealthServicer())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    gateway = GatewayServer(create_gateway_app(Settings(), f"127.0.0.1:{port}"))
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            yield script, http
    finally:
        await gateway.stop()
        await server.stop(None)


async def test_the_forwarded_chain_keeps_only_its_rightmost_hops(
    scripted: tuple[ScriptedUpstream, httpx.AsyncClient],
) -> None:
    script, http = scripted
    hops = [f"10.{i // 250}.{i % 250}.1" for i in range(3000)]
    response = await http.get("/v1/cars/a", headers={"X-Forwarded-For": ", ".join(hops)})
    assert response.status_code == 200
    forwarded = script.last().metadata["x-forwarded-for"].split(", ")
    assert forwarded == [*hops[-MAX_FORWARDED_HOPS:], "127.0.0.1"]


async def test_the_chain_is_cut_at_an_entry_no_address_could_be(
    scripted: tuple[ScriptedUpstream, httpx.AsyncClient],
) -> None:
    script, http = scripted
    # Two header lines are one list; a 5,000-character "hop" ends what is believable.
    headers = [("X-Forwarded-For", "198.51.100.1, " + "x" * 5000), ("X-Forwarded-For", "203.0.113.9")]
    response = await http.get("/v1/cars/a", headers=headers)
    assert response.status_code == 200
    assert script.last().metadata["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
