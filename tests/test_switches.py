"""The rollback plan: settings switch caching and rate limiting off, and on again."""

from __future__ import annotations

import uuid

import redis.asyncio
from edge_harness import edge_server, metadata_of_call
from exodrive.v1 import fleet_pb2

from server.interceptors import build_interceptors
from server.interceptors.cache import CacheInterceptor
from server.interceptors.rate_limit import RateLimitInterceptor
from server.metrics import Metrics
from server.policy import PolicyTable
from server.settings import Settings


async def calls(settings: Settings, count: int) -> tuple[list[dict[str, str | bytes]], int]:
    client = redis.asyncio.Redis.from_url(settings.redis_url or "")
    interceptors = build_interceptors(settings, PolicyTable(), Metrics(), redis_client=client)
    found = []
    async with edge_server(interceptors) as edge:
        for _ in range(count):
            call = edge.fleet.GetCar(fleet_pb2.GetCarRequest(car_id="c1"))
            await call
            found.append(await metadata_of_call(call))
        served = edge.servicer.calls
    await client.aclose()
    return found, served


def private(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(
        update={
            "redis_key_prefix": f"{settings.redis_key_prefix}-{uuid.uuid4().hex[:8]}",
            "rate_limit_public": 2,
        }
        | changes
    )


async def test_both_on_by_default(settings: Settings) -> None:
    metadata, served = await calls(private(settings), 2)
    assert [m["x-cache"] for m in metadata] == ["MISS", "HIT"]
    assert [m["x-ratelimit-remaining"] for m in metadata] == ["1", "0"]
    assert served == 1


async def test_both_off(settings: Settings) -> None:
    s = private(settings, cache_enabled=False, rate_limit_enabled=False)
    kinds = {type(i) for i in build_interceptors(s, PolicyTable(), Metrics())}
    assert CacheInterceptor not in kinds
    assert RateLimitInterceptor not in kinds
    metadata, served = await calls(s, 4)  # above the limit of 2: nothing refuses
    assert served == 4  # every call reached the servicer
    for m in metadata:
        assert "x-cache" not in m
        assert "x-ratelimit-limit" not in m
        assert "x-trace-id" in m
        assert "x-response-time" in m


async def test_each_alone(settings: Settings) -> None:
    metadata, served = await calls(private(settings, cache_enabled=False), 2)
    assert served == 2
    assert "x-cache" not in metadata[0]
    assert metadata[1]["x-ratelimit-remaining"] == "0"
    metadata, served = await calls(private(settings, rate_limit_enabled=False), 3)
    assert served == 1
    assert [m["x-cache"] for m in metadata] == ["MISS", "HIT", "HIT"]
    assert "x-ratelimit-limit" not in metadata[2]
