"""Webhook refusals and delivery outcomes exported as Prometheus counters, through real gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from exodrive.v1 import webhook_pb2, webhook_pb2_grpc
from google.api import httpbody_pb2
from pydantic import SecretStr
from resend_samples import SECRET, encode, event, now, sign

from server.bootstrap import Application, build_application
from server.grpc_server import GrpcServer
from server.settings import Settings


@pytest.fixture
async def served(migrated_settings: Settings) -> AsyncIterator[tuple[Application, grpc.aio.Channel]]:
    settings = migrated_settings.model_copy(update={"resend_webhook_secrets": [SecretStr(SECRET)]})
    app = await build_application(settings)
    server = GrpcServer(app, host="127.0.0.1", port=0, grace_seconds=1.0)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        yield app, channel
    finally:
        await channel.close()
        await server.stop(grace_seconds=1.0)
        await app.close()


async def deliver(channel: grpc.aio.Channel, body: bytes, headers: dict[str, str]) -> grpc.StatusCode:
    stub = webhook_pb2_grpc.WebhookServiceStub(channel)
    request = webhook_pb2.HandleResendEventRequest(body=httpbody_pb2.HttpBody(data=body))
    try:
        await stub.HandleResendEvent(request, metadata=tuple(headers.items()))
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_refusals_and_outcomes_are_counted(served: tuple[Application, grpc.aio.Channel]) -> None:
    app, channel = served
    good = encode(event("email.delivered", "metrics-email-1", now()))
    signed = sign(good, now())
    assert await deliver(channel, good, signed) == grpc.StatusCode.OK
    assert await deliver(channel, good, signed) == grpc.StatusCode.OK  # the provider's redelivery
    unknown = encode({"type": "contact.created", "created_at": "2024-01-01T00:00:00Z", "data": {}})
    assert await deliver(channel, unknown, sign(unknown, now())) == grpc.StatusCode.OK
    broken = b'{"type": "email.sent"'
    assert await deliver(channel, broken, sign(broken, now())) == grpc.StatusCode.INVALID_ARGUMENT
    forged = {**sign(good, now()), "svix-signature": "v1,AAAA"}
    assert await deliver(channel, good, forged) == grpc.StatusCode.UNAUTHENTICATED
    assert await deliver(channel, good, {}) == grpc.StatusCode.UNAUTHENTICATED

    def sample(name: str, **labels: str) -> float | None:
        return app.metrics.registry.get_sample_value(name, {"provider": "resend", **labels})

    for outcome, count in (("stored", 1.0), ("duplicate", 1.0), ("ignored", 1.0), ("failed", 1.0)):
        assert sample("exodrive_webhook_deliveries_total", outcome=outcome) == count, outcome
    assert sample("exodrive_webhook_refusals_total", reason="no_match") == 1.0
    assert sample("exodrive_webhook_refusals_total", reason="missing_headers") == 1.0
    assert app.webhooks.rejections == {"no_match": 1, "missing_headers": 1}
