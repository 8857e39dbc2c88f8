"""Rate limiting against real Redis: exact boundaries, windows on Redis's clock, shared budgets
across processes, truthful retry-after, trusted-proxy address walk, and the Redis-down fallback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid

import grpc
import pytest
import redis.asyncio
from edge_harness import edge_server, metadata_of, metadata_of_call, private_redis_server, status_details
from exodrive.v1 import booking_pb2, fleet_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.auth import mint_token
from server.interceptors import build_interceptors, build_rate_limiter
from server.interceptors.rate_limit import client_address, parse_networks, peer_address
from server.metrics import Metrics
from server.policy import PolicyTable
from server.rate_limiter import LocalRateLimiter
from server.settings import Settings
from services.principal import Role

GET = fleet_pb2.GetCarRequest(car_id="c1")


def limited(settings: Settings, **changes: object) -> Settings:
    """Settings with a key prefix of their own, so each test starts with fresh budgets."""
    return settings.model_copy(
        update={"redis_key_prefix": f"{settings.redis_key_prefix}-{uuid.uuid4().hex[:8]}"} | changes
    )


@pytest.fixture
async def redis_client(settings: Settings) -> redis.asyncio.Redis:
    client = redis.asyncio.Redis.from_url(settings.redis_url or "")
    yield client
    await client.aclose()


def token(settings: Settings, role: Role, subject: str) -> tuple[tuple[str, str], ...]:
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    return (("authorization", f"Bearer {mint_token(secret, role=role, subject=subject)}"),)


# --- the client address -------------------------------------------------------------------------

TRUSTED = parse_networks(["10.0.0.0/8", "127.0.0.1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("ipv4:203.0.113.5:4000", "1.2.3.4", "203.0.113.5"),  # untrusted peer: header ignored
        ("ipv4:127.0.0.1:4000", "198.51.100.7", "198.51.100.7"),  # the gateway appended the client
        ("ipv4:127.0.0.1:4000", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # spoofed left entry ignored
        ("ipv4:127.0.0.1:4000", "6.6.6.6, 198.51.100.7, 10.1.2.3", "198.51.100.7"),  # trusted hops skipped
        ("ipv4:127.0.0.1:4000", "10.9.9.9, 10.1.2.3", "10.9.9.9"),  # all trusted: the farthest
        ("ipv4:127.0.0.1:4000", "garbage, 10.1.2.3", "10.1.2.3"),  # broken chain: last trusted hop
        ("ipv4:127.0.0.1:4000", "", "127.0.0.1"),
        ("ipv6:%5B::1%5D:4000", None, "::1"),
        ("ipv6:[2001:db8::1]:4000", None, "2001:db8::1"),
        ("ipv4:127.0.0.1:4000", "[2001:db8::9]:5555", "2001:db8::9"),
    ],
)
def test_client_address(peer: str, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, TRUSTED) == expected


def test_unix_peer_has_no_address() -> None:
    assert peer_address("unix:/tmp/socket") is None
    assert client_address("unix:/tmp/socket", "1.2.3.4", TRUSTED) == "unix:/tmp/socket"


# --- through the server, on the machine's Redis ---------------------------------------------------


async def test_exact_boundary_and_headers(settings: Settings, redis_client: redis.asyncio.Redis) -> None:
    s = limited(settings, rate_limit_public=3)
    async with edge_server(
        build_interceptors(s, PolicyTable(), Metrics(), redis_client=redis_client)
    ) as edge:
        for remaining in (2, 1, 0):
            call = edge.fleet.GetCar(GET)
            await call
            metadata = await metadata_of_call(call)
            assert metadata["x-ratelimit-limit"] == "3"
            assert metadata["x-ratelimit-remaining"] == str(remaining)
            assert metadata["x-ratelimit-reset"] in ("59", "60")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await edge.fleet.GetCar(GET)
    error = caught.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    metadata = metadata_of(error)
    assert metadata["x-ratelimit-remaining"] == "0"
    assert metadata["retry-after"] in ("59", "60")
    assert "x-trace-id" in metadata
    status = status_details(error)
    assert [d.TypeName() for d in status.details] == [
        "google.rpc.ErrorInfo",
        "google.rpc.QuotaFailure",
        "google.rpc.RetryInfo",
    ]
    quota = error_details_pb2.QuotaFailure()
    status.details[1].Unpack(quota)
    subject = quota.violations[0].subject
    assert subject.startswith("public:")
    assert "127.0.0.1" not in subject  # no raw address anywhere in what the limiter keeps
    keys = [k.decode() async for k in redis_client.scan_iter(match=f"{s.redis_key_prefix}:ratelimit:*")]
    assert keys == [f"{s.redis_key_prefix}:ratelimit:{{{subject}}}"]
    assert all("127.0.0.1" not in k for k in keys)


async def test_limit_of_one_and_truthful_retry_after(
    settings: Settings, redis_client: redis.asyncio.Redis
) -> None:
    s = limited(settings, rate_limit_public=1, rate_limit_window_seconds=1.0)
    async with edge_server(
        build_interceptors(s, PolicyTable(), Metrics(), redis_client=redis_client)
    ) as edge:
        await edge.fleet.GetCar(GET)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await edge.fleet.GetCar(GET)
        retry_after = int(metadata_of(caught.value)["retry-after"])
        assert retry_after == 1
        # Refused calls do not count: another refusal does not push the window further.
        with pytest.raises(grpc.aio.AioRpcError):
            await edge.fleet.GetCar(GET)
        await asyncio.sleep(retry_after)
        await edge.fleet.GetCar(GET)  # admitted once the advertised wait has passed


async def test_window_rolls_over(settings: Settings, redis_client: redis.asyncio.Redis) -> None:
    s = limited(settings, rate_limit_public=2, rate_limit_window_seconds=0.6)
    async with edge_server(
        build_interceptors(s, PolicyTable(), Metrics(), redis_client=redis_client)
    ) as edge:
        await edge.fleet.GetCar(GET)
        await asyncio.sleep(0.35)
        await edge.fleet.GetCar(GET)
        with pytest.raises(grpc.aio.AioRpcError):
            await edge.fleet.GetCar(GET)
        await asyncio.sleep(0.3)  # the first call left the window, the second has not
        await edge.fleet.GetCar(GET)
        with pytest.raises(grpc.aio.AioRpcError):
            await edge.fleet.GetCar(GET)


async def test_tiers_by_caller_and_method(settings: Settings, redis_client: redis.asyncio.Redis) -> None:
    s = limited(
        settings,
        rate_limit_public=5,
        rate_limit_authenticated=7,
        rate_limit_admin=9,
        rate_limit_booking_create=2,
    )
    async with edge_server(
        build_interceptors(s, PolicyTable(), Metrics(), redis_client=redis_client)
    ) as edge:
        for metadata, expected in [
            ((), "5"),
            (token(s, Role.CUSTOMER, "cust-1"), "7"),
            (token(s, Role.ADMIN, "boss"), "9"),
            (token(s, Role.SERVICE, "mailer"), "9"),
        ]:
            call = edge.fleet.GetCar(GET, metadata=metadata)
            await call
            assert (await metadata_of_call(call))["x-ratelimit-limit"] == expected
        # Booking creation has its own budget: per user, or per address for guests.
        create = booking_pb2.CreateBookingRequest(car_id="c1")
        for _ in range(2):
            await edge.bookings.CreateBooking(create)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await edge.bookings.CreateBooking(create)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        call = edge.bookings.CreateBooking(create, metadata=token(s, Role.CUSTOMER, "cust-2"))
        await call
        assert (await metadata_of_call(call))["x-ratelimit-limit"] == "2"
        # The guest's booking budget is spent, its read budget is not.
        await edge.fleet.GetCar(GET)


async def test_spoofed_forwarded_for_never_picks_the_bucket(
    settings: Settings, redis_client: redis.asyncio.Redis
) -> None:
    s = limited(settings, rate_limit_public=1, trusted_proxies=["127.0.0.1"])
    async with edge_server(
        build_interceptors(s, PolicyTable(), Metrics(), redis_client=redis_client)
    ) as edge:
        await edge.fleet.GetCar(GET, metadata=(("x-forwarded-for", "1.1.1.1, 198.51.100.7"),))
        with pytest.raises(grpc.aio.AioRpcError):
            await edge.fleet.GetCar(GET, metadata=(("x-forwarded-for", "2.2.2.2, 198.51.100.7"),))
        # Another real client (right-most untrusted entry) has its own budget.
        await edge.fleet.GetCar(GET, metadata=(("x-forwarded-for", "1.1.1.1, 198.51.100.8"),))
    untrusted = limited(settings, rate_limit_public=1)  # 127.0.0.1 not trusted: the header is ignored
    async with edge_server(
        build_interceptors(untrusted, PolicyTable(), Metrics(), redis_client=redis_client)
    ) as edge:
        await edge.fleet.GetCar(GET, metadata=(("x-forwarded-for", "198.51.100.7"),))
        with pytest.raises(grpc.aio.AioRpcError):
            await edge.fleet.GetCar(GET, metadata=(("x-forwarded-for", "198.51.100.8"),))


async def test_allowlist_and_health_are_never_limited(
    settings: Settings, redis_client: redis.asyncio.Redis
) -> None:
    s = limited(settings, rate_limit_public=1, rate_limit_allowlist=["127.0.0.0/8"])
    async with edge_server(
        build_interceptors(s, PolicyTable(), Metrics(), redis_client=redis_client)
    ) as edge:
        for _ in range(3):
            call = edge.fleet.GetCar(GET)
            await call
            assert "x-ratelimit-limit" not in await metadata_of_call(call)
    s = limited(settings, rate_limit_public=1)
    async with edge_server(
        build_interceptors(s, PolicyTable(), Metrics(), redis_client=redis_client)
    ) as edge:
        health = health_pb2_grpc.HealthStub(edge.channel)
        await edge.health.set("", health_pb2.HealthCheckResponse.SERVING)
        for _ in range(5):
            response = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert response.status == health_pb2.HealthCheckResponse.SERVING


PROCESS_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import redis.asyncio
    from server.metrics import Metrics
    from server.rate_limiter import LocalRateLimiter, RateLimiter
    from server.redis_guard import RedisGuard

    async def main(url, key, attempts):
        client = redis.asyncio.Redis.from_url(url)
        metrics = Metrics()
        guard = RedisGuard("t", metrics, timeout_seconds=2.0)
        limiter = RateLimiter(client, guard, metrics, LocalRateLimiter())
        decisions = await asyncio.gather(*(limiter.hit(key, 25, 60.0) for _ in range(attempts)))
        print(sum(d.allowed for d in decisions), int(metrics.rate_limit_fallbacks._value.get()))
        await client.aclose()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def test_two_processes_share_one_budget(settings: Settings) -> None:
    key = f"{settings.redis_key_prefix}:ratelimit:{{shared-{uuid.uuid4().hex}}}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS_SCRIPT, settings.redis_url or "", key, "20"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [process.communicate(timeout=60)[0].split() for process in processes]
    assert all(process.returncode == 0 for process in processes)
    assert sum(int(admitted) for admitted, _ in results) == 25  # 40 attempts, one budget of 25
    assert all(fallbacks == "0" for _, fallbacks in results)


# --- Redis down ------------------------------------------------------------------------------------


async def test_redis_stopped_mid_run_falls_back_in_process(settings: Settings) -> None:
    metrics = Metrics()
    with private_redis_server() as url:
        client = redis.asyncio.Redis.from_url(url)
        s = limited(settings, redis_url=url, rate_limit_public=3, redis_timeout_ms=200)
        limiter = build_rate_limiter(s, client, metrics)
        interceptors = build_interceptors(
            s, PolicyTable(), metrics, redis_client=client, rate_limiter=limiter
        )
        async with edge_server(interceptors) as edge:
            call = edge.fleet.GetCar(GET)
            await call
            assert (await metadata_of_call(call))["x-ratelimit-remaining"] == "2"
            assert metrics.rate_limit_fallbacks._value.get() == 0
            # Stop Redis: the private server above, never the shared one.
            await client.shutdown(nosave=True)
            for remaining in ("2", "1", "0"):
                call = edge.fleet.GetCar(GET)
                await call  # never an error for the outage
                assert (await metadata_of_call(call))["x-ratelimit-remaining"] == remaining
            # The fallback applies the same tier: the fourth call in the window is refused.
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await edge.fleet.GetCar(GET)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert metrics.rate_limit_fallbacks._value.get() == 4
            assert metrics.redis_errors.labels("rate_limit")._value.get() >= 1
            assert not limiter.redis_healthy
        await client.aclose()


async def test_slow_redis_times_out_into_the_fallback(settings: Settings) -> None:
    """A Redis that does not answer costs one timeout, then the limiter skips it for a pause."""
    metrics = Metrics()
    with private_redis_server() as url:
        client = redis.asyncio.Redis.from_url(url)
        s = limited(settings, redis_timeout_ms=50)
        limiter = build_rate_limiter(s, client, metrics)
        blocker = redis.asyncio.Redis.from_url(url)
        # CLIENT PAUSE holds every other client's commands, as a stalled Redis would.
        await blocker.execute_command("CLIENT", "PAUSE", "500", "ALL")
        loop = asyncio.get_running_loop()
        started = loop.time()
        decision = await limiter.hit("k", 5, 60.0)
        assert decision.allowed
        assert decision.fallback
        assert loop.time() - started < 0.3
        second = await limiter.hit("k", 5, 60.0)  # skipped at once: no second timeout
        assert second.fallback
        assert second.remaining == 3
        await blocker.aclose()
        await client.aclose()


def test_local_limiter_window() -> None:
    now = [100.0]
    local = LocalRateLimiter(clock=lambda: now[0], max_keys=2)
    assert [local.hit("a", 2, 10.0).allowed for _ in range(3)] == [True, True, False]
    refused = local.hit("a", 2, 10.0)
    assert refused.reset_seconds == pytest.approx(10.0)
    assert refused.retry_after_seconds == 10
    now[0] = 110.0
    assert local.hit("a", 2, 10.0).allowed
    local.hit("b", 1, 10.0)
    local.hit("c", 1, 10.0)  # evicts "a", the least recently used
    assert local.hit("a", 1, 10.0).remaining == 0
