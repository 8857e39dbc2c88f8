"""Metrics in the application's own registry, served over HTTP by start_metrics_server."""

from __future__ import annotations

import uuid

import grpc
import httpx
import pytest
import redis.asyncio
from edge_harness import edge_server, metadata_of_call
from exodrive.v1 import fleet_pb2

from server.interceptors import build_interceptors
from server.metrics import Metrics, PoolStats, start_metrics_server
from server.policy import PolicyTable
from server.settings import Settings

GET_CAR = "/exodrive.v1.FleetService/GetCar"


async def test_calls_latency_cache_and_limits_are_counted(settings: Settings) -> None:
    s = settings.model_copy(
        update={
            "redis_key_prefix": f"{settings.redis_key_prefix}-{uuid.uuid4().hex[:8]}",
            "rate_limit_public": 3,
        }
    )
    client = redis.asyncio.Redis.from_url(s.redis_url or "")
    metrics = Metrics()
    async with edge_server(build_interceptors(s, PolicyTable(), metrics, redis_client=client)) as edge:
        for _ in range(3):
            call = edge.fleet.GetCar(fleet_pb2.GetCarRequest(car_id="c1"))
            await call
            assert str((await metadata_of_call(call))["x-response-time"]).endswith("ms")
        with pytest.raises(grpc.aio.AioRpcError):
            await edge.fleet.GetCar(fleet_pb2.GetCarRequest(car_id="c1"))
    await client.aclose()
    value = metrics.registry.get_sample_value
    assert value("exodrive_grpc_calls_total", {"method": GET_CAR, "code": "OK"}) == 3
    assert value("exodrive_grpc_calls_total", {"method": GET_CAR, "code": "RESOURCE_EXHAUSTED"}) == 1
    assert value("exodrive_grpc_call_seconds_count", {"method": GET_CAR}) == 4
    assert value("exodrive_cache_lookups_total", {"method": GET_CAR, "outcome": "miss"}) == 1
    assert value("exodrive_cache_lookups_total", {"method": GET_CAR, "outcome": "hit"}) == 2
    assert value("exodrive_rate_limit_decisions_total", {"tier": "public", "decision": "admitted"}) == 3
    assert value("exodrive_rate_limit_decisions_total", {"tier": "public", "decision": "refused"}) == 1
    assert value("exodrive_rate_limit_fallbacks_total") == 0


def test_metrics_port_serves_the_registry_with_pool_usage() -> None:
    metrics = Metrics()
    metrics.track_db_pool(lambda: PoolStats(size=10, checked_out=3, overflow=0))
    metrics.calls.labels("/x.Y/Z", "OK").inc()
    server, thread = start_metrics_server(metrics, 0)
    try:
        body = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics").text
    finally:
        server.shutdown()
        thread.join(5)
    assert 'exodrive_grpc_calls_total{code="OK",method="/x.Y/Z"} 1.0' in body
    assert 'exodrive_db_pool_connections{state="checked_out"} 3.0' in body
    # Its own registry: the process-global default collectors are not mixed in.
    assert "python_gc_objects_collected_total" not in body
