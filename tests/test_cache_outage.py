"""Invalidations that fail while Redis is unreachable are not lost: a write made while Redis is
paused (SIGSTOP on a private redis-server) is never followed by a stale HIT once Redis is back.
Real gRPC, real PostgreSQL, a real Redis that really stops answering."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date

import grpc
import redis.asyncio
from edge_harness import metadata_of_call, private_redis_process
from exodrive.v1 import booking_pb2, booking_pb2_grpc, fleet_pb2, fleet_pb2_grpc
from fleet_helpers import NOW, day, make_car
from google.type import date_pb2

from server.bootstrap import Application, build_application
from server.cache import RedisCache
from server.grpc_server import GrpcServer
from server.interceptors import redis_guard
from server.metrics import Metrics
from server.settings import Settings
from services.clock import FixedClock


def gdate(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


@dataclass
class Stack:
    app: Application
    fleet: fleet_pb2_grpc.FleetServiceStub
    bookings: booking_pb2_grpc.BookingServiceStub

    async def availability(self, request: fleet_pb2.GetCarAvailabilityRequest) -> tuple[str, bool]:
        call = self.fleet.GetCarAvailability(request)
        response = await call
        return str((await metadata_of_call(call))["x-cache"]), response.available


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[Stack]:
    app = await build_application(settings, clock=FixedClock(NOW, settings.business_timezone))
    server = GrpcServer(app, host="127.0.0.1", port=0)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        yield Stack(
            app, fleet_pb2_grpc.FleetServiceStub(channel), booking_pb2_grpc.BookingServiceStub(channel)
        )
    finally:
        await channel.close()
        await server.stop(grace_seconds=1.0)
        await app.close()


async def test_a_write_during_a_redis_pause_is_never_followed_by_a_stale_hit(
    migrated_settings: Settings,
) -> None:
    with private_redis_process() as (url, redis_process):
        settings = migrated_settings.model_copy(
            update={
                "redis_url": url,
                "redis_key_prefix": f"outage-{uuid.uuid4().hex[:8]}",
                "redis_timeout_ms": 100,
                "rate_limit_enabled": False,
            }
        )
        async with served(settings) as stack:
            car = await make_car(stack.app)
            availability = fleet_pb2.GetCarAvailabilityRequest(
                car_id=str(car.id), start_date=gdate(day(10)), end_date=gdate(day(12))
            )
            assert await stack.availability(availability) == ("MISS", True)
            assert await stack.availability(availability) == ("HIT", True)

            redis_process.send_signal(signal.SIGSTOP)
            booking = await stack.bookings.CreateBooking(
                booking_pb2.CreateBookingRequest(
                    request_id=str(uuid.uuid4()),
                    car_id=str(car.id),
                    start_date=gdate(day(10)),
                    end_date=gdate(day(12)),
                    contact=booking_pb2.Contact(
                        full_name="Ada Lovelace", email="ada-outage@example.com", phone="+1 555 0100"
                    ),
                )
            )
            assert booking.booking.booking_id
            cache = stack.app.notifier
            assert isinstance(cache, RedisCache)
            assert cache.pending_invalidations == 1
            # While the invalidation is pending this process does not trust the cache.
            assert await stack.availability(availability) == ("BYPASS", False)
            degradation = stack.app.metrics.degradation()
            assert degradation["cachePendingInvalidations"] == 1
            assert degradation["redis"] == "down"

            redis_process.send_signal(signal.SIGCONT)
            await asyncio.sleep(1.1)  # past the guard's pause after the failures
            # The first cached read once Redis answers replays the invalidation: a MISS, fresh.
            assert await stack.availability(availability) == ("MISS", False)
            assert await stack.availability(availability) == ("HIT", False)
            assert cache.pending_invalidations == 0
            registry = stack.app.metrics.registry
            assert registry.get_sample_value("exodrive_cache_invalidations_total", {"result": "failed"}) == 1
            assert (
                registry.get_sample_value("exodrive_cache_invalidations_total", {"result": "replayed"}) == 1
            )
            assert registry.get_sample_value("exodrive_cache_pending_invalidations") == 0
            assert registry.get_sample_value("exodrive_redis_up", {"component": "cache"}) == 1


async def test_the_replay_loop_reaches_other_processes_without_a_read(settings: Settings) -> None:
    """No read in the writer: its retry loop replays alone, so another process sharing the Redis
    stops serving the stale entry within a retry interval of Redis coming back."""
    with private_redis_process() as (url, redis_process):
        client = redis.asyncio.Redis.from_url(url)
        tuned = settings.model_copy(update={"redis_key_prefix": f"replay-{uuid.uuid4().hex[:8]}"})
        writer_metrics, reader_metrics = Metrics(), Metrics()
        writer = RedisCache(
            client,
            redis_guard("cache", tuned, writer_metrics),
            writer_metrics,
            key_prefix=tuned.redis_key_prefix,
            replay_interval_seconds=0.2,
        )
        reader = RedisCache(
            client,
            redis_guard("cache", tuned, reader_metrics),
            reader_metrics,
            key_prefix=tuned.redis_key_prefix,
        )
        values = iter([b"old", b"new"])

        async def compute() -> bytes:
            return next(values)

        assert (await reader.get_or_compute("k", ["car:1"], 60, compute)).value == b"old"
        redis_process.send_signal(signal.SIGSTOP)
        await writer.invalidate(["car:1"])
        assert writer.pending_invalidations == 1
        redis_process.send_signal(signal.SIGCONT)
        for _ in range(50):
            if writer.pending_invalidations == 0:
                break
            await asyncio.sleep(0.1)
        assert writer.pending_invalidations == 0
        lookup = await reader.get_or_compute("k", ["car:1"], 60, compute)
        assert (lookup.value, lookup.outcome.value) == (b"new", "MISS")
        await writer.aclose()
        await client.aclose()


async def test_tag_versions_expire_and_never_repeat(settings: Settings) -> None:
    """Tags are bounded (they expire) yet an entry stamped before an expiry is never current again."""
    with private_redis_process() as (url, _process):
        client = redis.asyncio.Redis.from_url(url)
        metrics = Metrics()
        prefix = f"tags-{uuid.uuid4().hex[:8]}"
        cache = RedisCache(
            client, redis_guard("cache", settings, metrics), metrics, key_prefix=prefix, tag_ttl_seconds=0.3
        )
        await cache.invalidate(["car:1"])
        ttl = await client.pttl(cache.tag_key("car:1"))
        assert 0 < ttl <= 300
        first = int(await client.get(cache.tag_key("car:1")))
        await cache.invalidate(["car:1"])
        assert int(await client.get(cache.tag_key("car:1"))) == first + 1
        produced = iter([b"a", b"b"])

        async def compute() -> bytes:
            return next(produced)

        assert (await cache.get_or_compute("k", ["car:1"], 60, compute)).value == b"a"
        # The entry lives no longer than its tag can.
        assert 0 < await client.pttl(cache.entry_key("k")) <= 300
        await asyncio.sleep(0.35)
        assert await client.exists(cache.tag_key("car:1")) == 0
        await cache.invalidate(["car:1"])
        assert int(await client.get(cache.tag_key("car:1"))) > first + 1
        await client.aclose()
