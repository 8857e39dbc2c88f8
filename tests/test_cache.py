"""Cache-aside on real PostgreSQL and Redis: HIT/MISS, precise invalidation by real writes, single
flight counted in database queries, never a stale entry after invalidate(), per-caller isolation,
and bypass when Redis is down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date

import grpc
import pytest
import redis.asyncio
from edge_harness import edge_server, metadata_of_call, private_redis_server
from exodrive.v1 import fleet_pb2, fleet_pb2_grpc
from fleet_helpers import ADMIN, NOW, booking_request, customer, day, make_car
from google.type import date_pb2
from sqlalchemy import event

from server.auth import mint_token
from server.bootstrap import Application, build_application
from server.cache import Outcome, RedisCache
from server.grpc_server import GrpcServer
from server.interceptors import build_cache, build_interceptors
from server.metrics import Metrics
from server.policy import PolicyTable
from server.redis_guard import RedisGuard
from server.settings import Settings
from services.clock import FixedClock
from services.model import BookingStatus
from services.principal import Role


def fresh(settings: Settings, **changes: object) -> Settings:
    prefix = f"{settings.redis_key_prefix}-{uuid.uuid4().hex[:8]}"
    return settings.model_copy(update={"redis_key_prefix": prefix, "rate_limit_enabled": False} | changes)


def gdate(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


@dataclass
class Served:
    app: Application
    fleet: fleet_pb2_grpc.FleetServiceStub
    clock: FixedClock
    car_queries: list[str]

    async def outcome(self, method: str, request: object) -> tuple[str, object]:
        call = getattr(self.fleet, method)(request)
        response = await call
        return str((await metadata_of_call(call))["x-cache"]), response


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[Served]:
    clock = FixedClock(NOW, settings.business_timezone)
    app = await build_application(settings, clock=clock)
    queries: list[str] = []

    @event.listens_for(app.engine.sync_engine, "before_cursor_execute")
    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM cars" in statement:
            queries.append(statement)

    server = GrpcServer(app, host="127.0.0.1", port=0)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        yield Served(app, fleet_pb2_grpc.FleetServiceStub(channel), clock, queries)
    finally:
        await channel.close()
        await server.stop(grace_seconds=1.0)


async def test_hit_after_miss_and_each_invalidation_rule(migrated_settings: Settings) -> None:
    async with served(fresh(migrated_settings)) as s:
        car_x = await make_car(s.app)
        car_y = await make_car(s.app)
        get_x = fleet_pb2.GetCarRequest(car_id=str(car_x.id))
        fleet = fleet_pb2.ListCarsRequest(category="test")
        avail_x = fleet_pb2.GetCarAvailabilityRequest(
            car_id=str(car_x.id), start_date=gdate(day(10)), end_date=gdate(day(20))
        )
        avail_y = fleet_pb2.GetCarAvailabilityRequest(
            car_id=str(car_y.id), start_date=gdate(day(10)), end_date=gdate(day(20))
        )
        quote_x = fleet_pb2.QuotePriceRequest(
            car_id=str(car_x.id), start_date=gdate(day(10)), end_date=gdate(day(14))
        )
        reads = {"GetCar": get_x, "ListCars": fleet, "GetCarAvailability": avail_x, "QuotePrice": quote_x}

        async def outcomes() -> dict[str, str]:
            found = {name: (await s.outcome(name, request))[0] for name, request in reads.items()}
            found["other car availability"] = (await s.outcome("GetCarAvailability", avail_y))[0]
            return found

        assert set((await outcomes()).values()) == {"MISS"}
        assert set((await outcomes()).values()) == {"HIT"}

        # A booking on car X drops X's availability and quotes, nothing else.
        created = await s.app.bookings.create(
            customer("cache-user"), booking_request(car_x.id, day(11), day(13))
        )
        after_booking = await outcomes()
        assert after_booking == {
            "GetCar": "HIT",
            "ListCars": "HIT",
            "GetCarAvailability": "MISS",
            "QuotePrice": "MISS",
            "other car availability": "HIT",
        }
        _, availability = await s.outcome("GetCarAvailability", avail_x)
        assert [(d.month, d.day) for d in availability.unavailable_dates] == [
            (day(11).month, day(11).day),
            (day(12).month, day(12).day),
        ]

        # A transition and a cancellation each drop them again.
        await s.app.bookings.transition(ADMIN, created.booking.id, BookingStatus.CONFIRMED)
        assert (await s.outcome("GetCarAvailability", avail_x))[0] == "MISS"
        await s.app.bookings.cancel(ADMIN, created.booking.id)
        outcome, availability = await s.outcome("GetCarAvailability", avail_x)
        assert outcome == "MISS"
        assert availability.available
        assert (await s.outcome("QuotePrice", quote_x))[0] == "MISS"

        # A car update drops that car, its availability and quotes, and the fleet list.
        await outcomes()
        await s.app.fleet.update_car(ADMIN, car_x.id, {"name": "Renamed"})
        after_update = await outcomes()
        assert after_update == {
            "GetCar": "MISS",
            "ListCars": "MISS",
            "GetCarAvailability": "MISS",
            "QuotePrice": "MISS",
            "other car availability": "HIT",
        }
        assert (await s.outcome("GetCar", get_x))[1].car.name == "Renamed"

        # An expired PENDING hold drops the availability too.
        await s.app.bookings.create(customer("cache-user-2"), booking_request(car_x.id, day(15), day(16)))
        await s.outcome("GetCarAvailability", avail_x)
        assert (await s.outcome("GetCarAvailability", avail_x))[0] == "HIT"
        s.clock.set(NOW.replace(hour=23))
        assert await s.app.bookings.expire_overdue() >= 1
        outcome, availability = await s.outcome("GetCarAvailability", avail_x)
        assert outcome == "MISS"
        assert availability.available


async def test_concurrent_misses_reach_the_database_once_across_processes(
    migrated_settings: Settings,
) -> None:
    """Two applications (as two processes would: own pools, own caches, one Redis) and 20 concurrent
    misses of one key make exactly one database query for the car."""
    settings = fresh(migrated_settings)
    async with served(settings) as first, served(settings) as second:
        car = await make_car(first.app)
        first.car_queries.clear()
        second.car_queries.clear()
        request = fleet_pb2.GetCarRequest(car_id=str(car.id))
        results = await asyncio.gather(
            *(first.outcome("GetCar", request) for _ in range(10)),
            *(second.outcome("GetCar", request) for _ in range(10)),
        )
        assert len(first.car_queries) + len(second.car_queries) == 1
        assert sorted(outcome for outcome, _ in results) == ["HIT"] * 19 + ["MISS"]
        assert {response.car.name for _, response in results} == {car.name}


async def make_cache(
    client: redis.asyncio.Redis, settings: Settings, metrics: Metrics | None = None
) -> RedisCache:
    metrics = metrics or Metrics()
    guard = RedisGuard("cache", metrics, timeout_seconds=1.0)
    return RedisCache(client, guard, metrics, key_prefix=settings.redis_key_prefix, fill_wait_seconds=1.0)


async def test_an_entry_computed_before_an_invalidation_is_never_served(settings: Settings) -> None:
    client = redis.asyncio.Redis.from_url(settings.redis_url or "")
    cache = await make_cache(client, fresh(settings))
    computing, release = asyncio.Event(), asyncio.Event()

    async def slow_old_value() -> bytes:
        computing.set()
        await release.wait()
        return b"old"

    pending = asyncio.create_task(cache.get_or_compute("k", ["car:1"], 60, slow_old_value))
    await computing.wait()
    await cache.invalidate(["car:1"])  # the write committed while the old value was being read
    release.set()
    assert (await pending).value == b"old"  # that caller saw what it read

    async def new_value() -> bytes:
        return b"new"

    lookup = await cache.get_or_compute("k", ["car:1"], 60, new_value)
    assert lookup == type(lookup)(b"new", Outcome.MISS)
    assert (await cache.get_or_compute("k", ["car:1"], 60, new_value)).outcome is Outcome.HIT
    # Entries of other tags are untouched, and TTLs carry a small jitter below the policy's TTL.
    ttl = await client.pttl(cache.entry_key("k"))
    assert 54_000 <= ttl <= 60_000
    await client.aclose()


async def test_failed_computation_is_not_cached_and_releases_waiters(settings: Settings) -> None:
    client = redis.asyncio.Redis.from_url(settings.redis_url or "")
    cache = await make_cache(client, fresh(settings))

    async def fails() -> bytes:
        raise LookupError("not found")

    with pytest.raises(LookupError):
        await cache.get_or_compute("gone", ["car:2"], 60, fails)

    async def value() -> bytes:
        return b"v"

    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await cache.get_or_compute("gone", ["car:2"], 60, value)).outcome is Outcome.MISS
    assert loop.time() - started < 0.5  # the lock was released, nobody waited for it
    await client.aclose()


async def test_per_caller_entries_are_never_shared(settings: Settings) -> None:
    s = fresh(settings)
    policies = PolicyTable()
    info = policies.get("/exodrive.v1.FleetService/GetCar")
    assert info is not None
    info.policy.cache.per_caller = True
    client = redis.asyncio.Redis.from_url(s.redis_url or "")
    secret = s.jwt_secret.get_secret_value() if s.jwt_secret else ""

    def as_user(subject: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {mint_token(secret, role=Role.CUSTOMER, subject=subject)}"),)

    metrics = Metrics()
    cache = build_cache(s, client, metrics)
    async with edge_server(
        build_interceptors(s, policies, metrics, redis_client=client, cache=cache)
    ) as edge:
        request = fleet_pb2.GetCarRequest(car_id="c1")
        seen = {}
        for who in ("alice", "bob", "alice", "bob"):
            call = edge.fleet.GetCar(request, metadata=as_user(who))
            response = await call
            seen.setdefault(who, []).append(((await metadata_of_call(call))["x-cache"], response.car.name))
    assert seen["alice"] == [("MISS", "car 1"), ("HIT", "car 1")]
    assert seen["bob"] == [("MISS", "car 2"), ("HIT", "car 2")]
    keys = [k.decode() async for k in client.scan_iter(match=f"{{{s.redis_key_prefix}:cache}}*")]
    assert keys
    assert all("alice" not in k and "bob" not in k for k in keys)
    await client.aclose()


async def test_redis_down_bypasses_and_counts(settings: Settings) -> None:
    metrics = Metrics()
    with private_redis_server() as url:
        client = redis.asyncio.Redis.from_url(url)
        s = fresh(settings, redis_timeout_ms=200)
        cache = build_cache(s, client, metrics)
        async with edge_server(
            build_interceptors(s, PolicyTable(), metrics, redis_client=client, cache=cache)
        ) as edge:
            request = fleet_pb2.GetCarRequest(car_id="c1")
            for expected in ("MISS", "HIT"):
                call = edge.fleet.GetCar(request)
                await call
                assert (await metadata_of_call(call))["x-cache"] == expected
            await client.shutdown(nosave=True)
            for _ in range(3):
                call = edge.fleet.GetCar(request)
                response = await call  # never an error for the outage
                assert (await metadata_of_call(call))["x-cache"] == "BYPASS"
            assert response.car.car_id == "c1"
            assert edge.servicer.calls == 4
            assert metrics.cache.labels("/exodrive.v1.FleetService/GetCar", "bypass")._value.get() == 3
            await cache.invalidate(["car:c1"])  # no error either; counted as failed
            assert metrics.cache_invalidations.labels("failed")._value.get() == 1
        await client.aclose()
