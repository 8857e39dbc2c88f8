"""Only a delivery that proves it is the provider spends the provider's rate-limit budget: unsigned
or forged requests are refused (401 INVALID_SIGNATURE, counted) before the limiter, so a flood of
them cannot make Resend's next signed delivery answer 429. Real HTTP through the gateway, the real
gRPC server and its interceptors, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from exodrive.v1 import webhook_pb2, webhook_pb2_grpc
from google.api import httpbody_pb2
from pydantic import SecretStr
from resend_samples import SECRET, encode, event, now, sign

from server.bootstrap import Application, build_application
from server.gateway import GatewayServer, create_gateway_app
from server.grpc_server import GrpcServer
from server.settings import Settings

WEBHOOK = "/api/webhooks/resend"


@pytest.fixture
async def stack(migrated_settings: Settings) -> AsyncIterator[tuple[Application, httpx.AsyncClient, str]]:
    settings = migrated_settings.model_copy(
        update={
            "resend_webhook_secrets": [SecretStr(SECRET)],
            "redis_key_prefix": f"{migrated_settings.redis_key_prefix}-budget-{uuid.uuid4().hex[:6]}",
        }
    )
    app = await build_application(settings)
    server = GrpcServer(app, host="127.0.0.1", port=0, grace_seconds=1.0)
    await server.start()
    gateway = GatewayServer(create_gateway_app(settings, server.address))
    await gateway.start()
    try:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=gateway.url, limits=limits) as http:
            yield app, http, server.address
    finally:
        await gateway.stop()
        await server.stop(grace_seconds=1.0)
        await app.close()


async def test_unsigned_flood_does_not_spend_the_provider_budget(
    stack: tuple[Application, httpx.AsyncClient, str],
) -> None:
    app, http, _ = stack
    limit = app.settings.rate_limit_webhook
    assert limit == 600
    junk = b'{"type": "email.sent", "data": {}}'
    forged = {**sign(junk, now()), "svix-signature": "v1,AAAA"}
    semaphore = asyncio.Semaphore(16)

    async def post(headers: dict[str, str]) -> httpx.Response:
        async with semaphore:
            return await http.post(WEBHOOK, content=junk, headers=headers)

    floods = [post({}) for _ in range(limit)] + [post(forged) for _ in range(50)]
    answers = await asyncio.gather(*floods)
    assert {answer.status_code for answer in answers} == {401}
    assert {answer.json()["error"]["code"] for answer in answers} == {"INVALID_SIGNATURE"}
    # Refused before the limiter: they carry no budget at all.
    assert all("x-ratelimit-remaining" not in answer.headers for answer in answers)

    body = encode(event("email.delivered", f"budget-{uuid.uuid4()}", now()))
    accepted = await http.post(WEBHOOK, content=body, headers=sign(body, now()))
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "WEBHOOK_EVENT_STATUS_PROCESSED"
    assert accepted.headers["x-ratelimit-limit"] == "600"
    assert accepted.headers["x-ratelimit-remaining"] == "599"

    registry = app.metrics.registry
    refusals = {"provider": "resend"}
    assert (
        registry.get_sample_value(
            "exodrive_webhook_refusals_total", {**refusals, "reason": "missing_headers"}
        )
        == limit
    )
    assert (
        registry.get_sample_value("exodrive_webhook_refusals_total", {**refusals, "reason": "no_match"}) == 50
    )
    assert (
        registry.get_sample_value("exodrive_webhook_deliveries_total", {**refusals, "outcome": "stored"}) == 1
    )
    decisions = {"tier": "webhook", "decision": "admitted"}
    assert registry.get_sample_value("exodrive_rate_limit_decisions_total", decisions) == 1
    assert app.webhooks.rejections == {"missing_headers": limit, "no_match": 50}


async def test_signed_deliveries_still_spend_and_exhaust_the_budget(
    stack: tuple[Application, httpx.AsyncClient, str],
) -> None:
    """Over gRPC, with a limit of 2: the third proven delivery is refused with 429's code."""
    app, _, _ = stack
    settings = app.settings.model_copy(update={"rate_limit_webhook": 2})
    limited = await build_application(settings)
    server = GrpcServer(limited, host="127.0.0.1", port=0, grace_seconds=1.0)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = webhook_pb2_grpc.WebhookServiceStub(channel)
            codes = []
            for _ in range(3):
                body = encode(event("email.sent", f"budget-{uuid.uuid4()}", now()))
                request = webhook_pb2.HandleResendEventRequest(body=httpbody_pb2.HttpBody(data=body))
                try:
                    await stub.HandleResendEvent(request, metadata=tuple(sign(body, now()).items()))
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as error:
                    codes.append(error.code())
            assert codes == [grpc.StatusCode.OK, grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED]
    finally:
        await server.stop(grace_seconds=1.0)
        await limited.close()
