"""Issue-3 benchmark: the edge's cost against a bare grpc.aio echo, in one run on one machine.

Both servers run in this process's event loop beside the load generator, so they meet the same
conditions; compare the ratios, not the absolute figures. With DATABASE_URL and REDIS_URL set it
uses those servers, else embedded PostgreSQL and Redis (zero-config).
"""

from __future__ import annotations

import os
import random
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any

import grpc
from exodrive.v1 import booking_pb2, booking_pb2_grpc, fleet_pb2, fleet_pb2_grpc
from google.type import date_pb2
from sqlalchemy import event

from bench.harness import Result, drive, table
from server.bootstrap import Application, build_application
from server.grpc_server import GrpcServer
from server.settings import Settings

ECHO = "/bench.Echo/Echo"
UNLIMITED = 10**9


@contextmanager
def stores() -> Iterator[tuple[str, str]]:
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if database_url and redis_url:
        yield database_url, redis_url
        return
    from server.embedded import EmbeddedServers

    with tempfile.TemporaryDirectory() as folder, EmbeddedServers(folder) as embedded:
        yield embedded.database_url, embedded.redis_url


@asynccontextmanager
async def echo_server() -> AsyncIterator[grpc.aio.Channel]:
    async def echo(request: bytes, context: Any) -> bytes:
        return request

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop(None)


@asynccontextmanager
async def app_server(settings: Settings) -> AsyncIterator[tuple[Application, grpc.aio.Channel, list[str]]]:
    app = await build_application(settings)
    queries: list[str] = []

    @event.listens_for(app.engine.sync_engine, "before_cursor_execute")
    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        queries.append(statement)

    server = GrpcServer(app, host="127.0.0.1", port=0)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        yield app, channel, queries
    finally:
        await channel.close()
        await server.stop(grace_seconds=1.0)


def gdate(value: Any) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


async def run(quick: bool) -> None:
    duration = 1.0 if quick else 5.0
    from server import schema
    from services.seed import seed_demo_fleet

    with stores() as (database_url, redis_url):
        schema.upgrade(database_url)
        await seed_demo_fleet(database_url)
        base = Settings(
            database_url=database_url,
            redis_url=redis_url,
            redis_key_prefix=f"bench-{uuid.uuid4().hex[:8]}",
            # The limiter runs on every call, but never refuses: its cost is measured, not its limits.
            rate_limit_public=UNLIMITED,
            rate_limit_booking_create=UNLIMITED,
        )
        results: list[Result] = []
        async with echo_server() as channel:
            echo = channel.unary_unary(ECHO)
            payload = b"x" * 64
            for concurrency in (1, 16):
                results.append(
                    await drive("echo", lambda i: echo(payload), concurrency=concurrency, duration=duration)
                )

        async with app_server(base) as (app, channel, queries):
            fleet = fleet_pb2_grpc.FleetServiceStub(channel)
            bookings = booking_pb2_grpc.BookingServiceStub(channel)
            cars = list((await fleet.ListCars(fleet_pb2.ListCarsRequest(page_size=100))).cars)
            car_ids = [car.car_id for car in cars]
            today = app.clock.today()
            start, end = gdate(today + timedelta(days=30)), gdate(today + timedelta(days=37))
            get = fleet_pb2.GetCarRequest(car_id=car_ids[0])
            availability = fleet_pb2.GetCarAvailabilityRequest(
                car_id=car_ids[0], start_date=start, end_date=end
            )
            for concurrency in (1, 16):
                results.append(
                    await drive(
                        "GetCar cached (HIT)",
                        lambda i: fleet.GetCar(get),
                        concurrency=concurrency,
                        duration=duration,
                    )
                )
                results.append(
                    await drive(
                        "GetCarAvailability cached",
                        lambda i: fleet.GetCarAvailability(availability),
                        concurrency=concurrency,
                        duration=duration,
                    )
                )

            def create(i: int) -> Any:
                # Each booking its own car and week, far apart: no conflicts.
                car_id = car_ids[i % len(car_ids)]
                first = today + timedelta(days=400 + 3 * (i // len(car_ids)))
                return bookings.CreateBooking(
                    booking_pb2.CreateBookingRequest(
                        request_id=str(uuid.uuid4()),
                        car_id=car_id,
                        start_date=gdate(first),
                        end_date=gdate(first + timedelta(days=2)),
                        contact=booking_pb2.Contact(
                            full_name="Bench", email=f"bench-{i}@example.com", phone="+1 555 0100"
                        ),
                    )
                )

            offset = [0]

            def create_unique(i: int) -> Any:
                offset[0] += 1
                return create(offset[0])

            for concurrency in (1, 16):
                results.append(
                    await drive(
                        "CreateBooking (no conflicts)",
                        create_unique,
                        concurrency=concurrency,
                        duration=duration,
                    )
                )

            # Zipf read mix over the fleet, after a warm-up: hit rate and DB queries per read.
            weights = [1 / (rank + 1) ** 1.1 for rank in range(len(car_ids))]
            rng = random.Random(7)
            picks = rng.choices(car_ids, weights, k=100_000)
            metrics = app.metrics.registry

            def zipf(i: int) -> Any:
                return fleet.GetCar(fleet_pb2.GetCarRequest(car_id=picks[i % len(picks)]))

            await drive("zipf warm-up", zipf, concurrency=16, duration=min(duration, 1.0))
            hits_before = _cache(metrics, "hit")
            misses_before = _cache(metrics, "miss")
            queries.clear()
            mix = await drive("GetCar Zipf mix", zipf, concurrency=16, duration=duration, warmup=0)
            hits = _cache(metrics, "hit") - hits_before
            misses = _cache(metrics, "miss") - misses_before
            reads = len(mix.latencies) + mix.errors
            results.append(mix)

        async with app_server(base.model_copy(update={"cache_enabled": False})) as (app, channel, _):
            fleet = fleet_pb2_grpc.FleetServiceStub(channel)
            for concurrency in (1, 16):
                results.append(
                    await drive(
                        "GetCar cache off",
                        lambda i: fleet.GetCar(get),
                        concurrency=concurrency,
                        duration=duration,
                    )
                )

    order = [
        "echo",
        "GetCar cached (HIT)",
        "GetCar cache off",
        "GetCarAvailability cached",
        "CreateBooking (no conflicts)",
        "GetCar Zipf mix",
    ]
    results.sort(key=lambda r: (r.concurrency, order.index(r.name)))
    print(table(results, baseline="echo"))
    print(
        f"\nZipf mix over {len(car_ids)} cars: hit rate {hits / max(1, hits + misses):.1%}, "
        f"database queries per read {len(queries) / max(1, reads):.4f} "
        f"({len(queries)} queries, {reads} reads)"
    )


def _cache(registry: Any, outcome: str) -> float:
    value = registry.get_sample_value(
        "exodrive_cache_lookups_total", {"method": "/exodrive.v1.FleetService/GetCar", "outcome": outcome}
    )
    return value or 0.0
