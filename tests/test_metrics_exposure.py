"""The application's metrics are reachable from a running server: the metrics port, the gateway's
/metrics beside its own series, /readyz details of Redis degradation, and one aggregated view of
`serve --workers N` processes (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from edge_harness import free_port, private_redis_process
from exodrive.v1 import fleet_pb2, fleet_pb2_grpc

from server.bootstrap import Application, build_application
from server.gateway import GatewayServer, create_gateway_app
from server.grpc_server import GrpcServer
from server.metrics import MULTIPROCESS_ENV, expose_metrics, multiprocess_metrics
from server.settings import Settings

LIST_CARS = "/exodrive.v1.FleetService/ListCars"


@dataclass
class Stack:
    app: Application
    http: httpx.AsyncClient
    fleet: fleet_pb2_grpc.FleetServiceStub
    redis_process: subprocess.Popen[bytes]


@pytest.fixture
async def stack(migrated_settings: Settings) -> AsyncIterator[Stack]:
    with private_redis_process() as (url, redis_process):
        settings = migrated_settings.model_copy(
            update={"redis_url": url, "redis_key_prefix": f"exposure-{uuid.uuid4().hex[:8]}"}
        )
        app = await build_application(settings)
        server = GrpcServer(app, host="127.0.0.1", port=0, grace_seconds=1.0)
        await server.start()
        gateway = GatewayServer(create_gateway_app(settings, server.address, application_metrics=app.metrics))
        await gateway.start()
        channel = grpc.aio.insecure_channel(server.address)
        try:
            async with httpx.AsyncClient(base_url=gateway.url) as http:
                yield Stack(app, http, fleet_pb2_grpc.FleetServiceStub(channel), redis_process)
        finally:
            await channel.close()
            await gateway.stop()
            await server.stop(grace_seconds=1.0)
            await app.close()


async def test_metrics_port_serves_the_application_registry(stack: Stack) -> None:
    await stack.fleet.ListCars(fleet_pb2.ListCarsRequest())
    exposure = await expose_metrics(stack.app.metrics, 0, "127.0.0.1")
    try:
        assert exposure.port is not None
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"http://127.0.0.1:{exposure.port}/metrics")).text
    finally:
        await exposure.stop()
    assert f'exodrive_grpc_calls_total{{code="OK",method="{LIST_CARS}"}} 1.0' in body
    assert 'exodrive_cache_lookups_total{method="' + LIST_CARS + '",outcome="miss"} 1.0' in body
    assert 'exodrive_db_pool_connections{state="size"}' in body
    assert 'exodrive_redis_up{component="cache"} 1.0' in body


async def test_a_negative_port_serves_nothing(stack: Stack) -> None:
    exposure = await expose_metrics(stack.app.metrics, -1, "127.0.0.1")
    assert exposure.port is None
    await exposure.stop()


async def test_gateway_metrics_show_both_registries(stack: Stack) -> None:
    assert (await stack.http.get("/v1/cars")).status_code == 200
    body = (await stack.http.get("/metrics")).text
    assert 'exodrive_gateway_requests_total{method="GET",route="/v1/cars",status="200"} 1.0' in body
    assert f'exodrive_grpc_calls_total{{code="OK",method="{LIST_CARS}"}} 1.0' in body
    assert "exodrive_rate_limit_decisions_total" in body
    assert "exodrive_webhook_refusals" in body or "exodrive_webhook_deliveries" in body


async def test_readyz_shows_redis_degradation_and_stays_ready(stack: Stack) -> None:
    ready = await stack.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "SERVING",
        "details": {
            "redis": "up",
            "components": {"cache": "up", "rate_limit": "up"},
            "rateLimitFallbacks": 0,
            "cacheBypasses": 0,
            "cachePendingInvalidations": 0,
        },
    }
    stack.redis_process.kill()
    stack.redis_process.wait(5)
    for _ in range(2):
        assert (await stack.http.get("/v1/cars")).headers["x-cache"] == "BYPASS"
    degraded = await stack.http.get("/readyz")
    # Readiness follows PostgreSQL: Redis down degrades, it does not unready.
    assert degraded.status_code == 200
    details = degraded.json()["details"]
    assert details["redis"] == "down"
    assert details["components"] == {"cache": "down", "rate_limit": "down"}
    assert details["rateLimitFallbacks"] == 2
    assert details["cacheBypasses"] == 2
    body = (await stack.http.get("/metrics")).text
    assert 'exodrive_redis_up{component="rate_limit"} 0.0' in body
    assert "exodrive_rate_limit_fallbacks_total 2.0" in body


WORKER = """
from server.metrics import Metrics
metrics = Metrics()
metrics.calls.labels("/exodrive.v1.FleetService/ListCars", "OK").inc(3)
metrics.db_pool.labels("size").set(10)
"""


def test_workers_are_reported_as_one_aggregated_view(tmp_path: Path) -> None:
    port = free_port()
    with multiprocess_metrics(tmp_path, port, "127.0.0.1") as env:
        shared = Path(env[MULTIPROCESS_ENV])
        assert shared.parent == tmp_path.resolve()
        for _ in range(2):
            subprocess.run([sys.executable, "-c", WORKER], env={**os.environ, **env}, check=True, timeout=60)
        body = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert f'exodrive_grpc_calls_total{{code="OK",method="{LIST_CARS}"}} 6.0' in body
    assert 'exodrive_db_pool_connections{state="size"} 20.0' in body
    assert not shared.exists()
