"""Webhook ingestion and inbox listing, measured through the real gateway and gRPC server.

    python -m bench.webhooks [--rate 100] [--seconds 10] [--emails 100000] [--samples 200]
    python -m bench --only webhooks [--quick]

Uses DATABASE_URL / REDIS_URL when set, else embedded servers; works in a fresh database that is
dropped afterwards. Ingestion is open-loop (requests leave on schedule whether or not earlier
ones returned), so slow acks show up as latency rather than as a lower offered rate. The load
generator runs in its own process with every event signed before the clock starts, so its cost
is not charged to the server; ingestion is measured through the gateway (HTTP) and over direct
gRPC, to tell the layers apart, and the server process's CPU per event is reported. The bench
sets its own webhook rate limit (the default, 600/min per provider, is below the rate offered).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection

import grpc
import httpx
import psycopg
from exodrive.v1 import webhook_pb2, webhook_pb2_grpc
from google.api import httpbody_pb2
from psycopg import sql
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from server import schema
from server.auth import mint_token
from server.bootstrap import build_application
from server.gateway import GatewayServer, create_gateway_app
from server.grpc_server import GrpcServer
from server.settings import Settings
from services.principal import Role
from services.storage.engine import with_database

SECRET = "whsec_" + "YmVuY2gtd2ViaG9vay1zZWNyZXQtb2YtMzItYnl0ZXM="
JWT_SECRET = "bench-secret-that-is-long-enough-for-hs256"
EVENTS = ("email.sent", "email.delivered", "email.opened", "email.clicked")

SEED_SQL = """
INSERT INTO inbox_emails (resend_email_id, sender, recipients, recipient, subject, email_type, tags,
                          status, status_rank, last_event_type, last_event_at, delivered_at, sent_at)
SELECT 'seed-' || g,
       'bookings@exodrive.com',
       ARRAY['customer' || g || '@example.com'],
       'customer' || g || '@example.com',
       'Your booking EXO-' || upper(substr(md5(g::text), 1, 8)),
       t.email_type,
       jsonb_build_object('email_type', t.email_type),
       s.status, s.rank, 'email.' || s.status,
       now() - make_interval(secs => g),
       CASE WHEN s.rank BETWEEN 3 AND 5 THEN now() - make_interval(secs => g) END,
       now() - make_interval(secs => g + 60)
FROM generate_series(1, %(count)s) AS g
JOIN (VALUES ('sent', 1, 0), ('delivery_delayed', 2, 1), ('delivered', 3, 2), ('opened', 4, 3),
             ('clicked', 5, 4), ('failed', 6, 5), ('bounced', 7, 6), ('complained', 8, 7))
     AS s(status, rank, slot) ON s.slot = g %% 8
JOIN (VALUES ('booking_confirmation', 0), ('payment_receipt', 1),
             ('booking_cancellation', 2), ('contract', 3))
     AS t(email_type, slot) ON t.slot = g %% 4
"""


@dataclass
class Row:
    name: str
    count: int
    p50_ms: float
    tail_ms: float
    tail_name: str
    note: str = ""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"exodrive_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass
class Stack:
    http: httpx.AsyncClient
    gateway_url: str
    grpc_address: str


@contextlib.asynccontextmanager
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    app = await build_application(settings)
    server = GrpcServer(app, host="127.0.0.1", port=0, grace_seconds=1.0)
    await server.start()
    gateway = GatewayServer(create_gateway_app(settings, server.address))
    await gateway.start()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    try:
        async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=30.0) as http:
            yield Stack(http, gateway.url, server.address)
    finally:
        await gateway.stop()
        await server.stop(grace_seconds=1.0)
        await app.close()


def signed_event(webhook: Webhook, index: int) -> tuple[bytes, dict[str, str]]:
    email = index // len(EVENTS)
    at = datetime.now(UTC)
    payload = {
        "type": EVENTS[index % len(EVENTS)],
        "created_at": (at + timedelta(milliseconds=index)).isoformat(),
        "data": {
            "email_id": f"bench-{email}",
            "from": "ExoDrive <bookings@exodrive.com>",
            "to": [f"guest{email}@example.com"],
            "subject": f"Your booking EXO-{email:08d}",
            "tags": [{"name": "email_type", "value": "booking_confirmation"}],
        },
    }
    body = json.dumps(payload).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    headers = {
        "svix-id": msg_id,
        "svix-timestamp": str(int(at.timestamp())),
        "svix-signature": webhook.sign(msg_id, at, body.decode()),
        "content-type": "application/json",
    }
    return body, headers


@dataclass
class Offered:
    """What the load generator saw: ack latencies in ms, failures and the time it took to send."""

    latencies: list[float]
    failures: int
    first_failure: str
    send_seconds: float


async def _offer(mode: str, target: str, rate: float, total: int, first: int) -> Offered:
    webhook = Webhook(SECRET)
    # Signed before the clock starts: the generator's own work stays off the schedule.
    events = [signed_event(webhook, first + index) for index in range(total)]
    latencies: list[float] = []
    failures = 0
    first_failure = ""
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
    async with (
        httpx.AsyncClient(base_url=target, limits=limits, timeout=30.0) as http,
        grpc.aio.insecure_channel(target) as channel,
    ):
        stub = webhook_pb2_grpc.WebhookServiceStub(channel)

        async def one(body: bytes, headers: dict[str, str]) -> None:
            nonlocal failures, first_failure
            started = time.perf_counter()
            try:
                if mode == "gateway":
                    response = await http.post("/api/webhooks/resend", content=body, headers=headers)
                    ok, why = response.status_code == 200, f"HTTP {response.status_code}"
                else:
                    request = webhook_pb2.HandleResendEventRequest(
                        body=httpbody_pb2.HttpBody(content_type="application/json", data=body)
                    )
                    metadata = tuple((k, v) for k, v in headers.items() if k.startswith("svix-"))
                    await stub.HandleResendEvent(request, metadata=metadata, timeout=30.0)
                    ok, why = True, ""
            except (httpx.TransportError, grpc.aio.AioRpcError) as error:
                ok, why = False, repr(error)[:200]
            latencies.append((time.perf_counter() - started) * 1000)
            if not ok:
                failures += 1
                first_failure = first_failure or why

        tasks = []
        start = time.perf_counter()
        for index, (body, headers) in enumerate(events):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body, headers)))
        sent = time.perf_counter() - start
        await asyncio.gather(*tasks)
    return Offered(latencies, failures, first_failure, sent)


def _generator(mode: str, target: str, rate: float, total: int, first: int, out: Connection) -> None:
    """The load generator's process: offers `total` events at `rate` and sends back what it saw."""
    out.send(asyncio.run(_offer(mode, target, rate, total, first)))
    out.close()


async def ingest(mode: str, target: str, rate: float, seconds: float, first: int) -> Row:
    """Open-loop ingestion from a separate process; the row carries p50/p99 ack latency, the
    sustained rate and this (server) process's CPU per event."""
    total = int(rate * seconds)
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    generator = context.Process(target=_generator, args=(mode, target, rate, total, first, send))
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    generator.start()
    offered: Offered = await asyncio.get_running_loop().run_in_executor(None, receive.recv)
    cpu = time.process_time() - cpu_before
    generator.join()
    # The generator's start-up (spawn, imports, signing) precedes its clock; charge only the run.
    elapsed = time.perf_counter() - wall_before
    note = f"{offered.failures} failed, sustained {total / max(offered.send_seconds, 1e-9):.1f}/s"
    note += f", server CPU {cpu / total * 1000:.2f} ms/event (over {elapsed:.1f} s incl. start-up)"
    if offered.first_failure:
        note += f", first failure {offered.first_failure}"
    return Row(
        f"ingest {mode} @ {rate:g}/s",
        total,
        statistics.median(offered.latencies),
        percentile(offered.latencies, 0.99),
        "p99",
        note,
    )


async def timed(name: str, samples: int, call: Callable[[], Awaitable[httpx.Response]]) -> Row:
    await call()  # warm-up
    latencies = []
    for _ in range(samples):
        started = time.perf_counter()
        response = await call()
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return Row(name, samples, statistics.median(latencies), percentile(latencies, 0.95), "p95")


async def measure(args: argparse.Namespace, database_url: str, redis_url: str) -> None:
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=f"exodrive-bench-{uuid.uuid4().hex[:8]}",
        jwt_secret=JWT_SECRET,
        resend_webhook_secrets=[SecretStr(SECRET)],
        # The bench measures ingestion, not the limiter: it offers more than the 600/min default.
        rate_limit_webhook=1_000_000,
        rate_limit_admin=1_000_000,
        seed_demo_fleet=False,
    )
    schema.upgrade(database_url)
    admin = {"Authorization": f"Bearer {mint_token(JWT_SECRET, role=Role.ADMIN, subject='bench')}"}
    rows: list[Row] = []
    async with stack(settings) as running:
        http = running.http
        # Warm-up (connections, statement caches), not reported.
        await ingest("grpc", running.grpc_address, args.rate, 1.0, 10**8)
        per_run = int(args.rate * args.seconds) + len(EVENTS)
        rows.append(await ingest("grpc", running.grpc_address, args.rate, args.seconds, 0))
        rows.append(await ingest("gateway", running.gateway_url, args.rate, args.seconds, per_run))

        seed_started = time.perf_counter()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(SEED_SQL, {"count": args.emails})
            conn.execute("ANALYZE inbox_emails")
        seeded_in = time.perf_counter() - seed_started

        def listing(**params: str) -> Callable[[], Awaitable[httpx.Response]]:
            return lambda: http.get("/v1/inbox/emails", params=params, headers=admin)

        n = args.samples
        rows.append(await timed("ListEmails first page", n, listing()))
        rows.append(await timed("ListEmails status=BOUNCED", n, listing(status="EMAIL_STATUS_BOUNCED")))
        rows.append(await timed("ListEmails type=contract", n, listing(emailType="contract")))
        rows.append(await timed("search rare 'customer4242'", n, listing(search="customer4242")))
        rows.append(await timed("search common 'exo-'", n, listing(search="exo-")))
        rows.append(await timed("search none 'zzz%_'", n, listing(search="zzz%_")))
    print(f"\nwebhooks and inbox ({args.emails:,} seeded emails, seeded in {seeded_in:.2f} s)")
    print(f"{'measure':34} {'n':>6} {'p50 ms':>8} {'tail ms':>9}  note")
    for r in rows:
        print(f"{r.name:34} {r.count:>6} {r.p50_ms:>8.2f} {r.tail_ms:>6.2f} {r.tail_name}  {r.note}")


def execute(args: argparse.Namespace) -> None:
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    with contextlib.ExitStack() as stack_:
        if not (database_url and redis_url):
            from server.embedded import EmbeddedServers

            folder = stack_.enter_context(tempfile.TemporaryDirectory(prefix="exodrive-bench-"))
            embedded = stack_.enter_context(EmbeddedServers(folder))
            database_url = database_url or embedded.database_url
            redis_url = redis_url or embedded.redis_url
        with fresh_database(database_url) as url:
            asyncio.run(measure(args, url, redis_url))


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--emails", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    return parser.parse_args(argv)


async def run(quick: bool) -> None:
    """Entry point of `python -m bench --only webhooks` (bench/__main__.py runs it in a loop)."""
    args = arguments(["--seconds", "3", "--emails", "10000", "--samples", "50"] if quick else [])
    # measure() needs its own event loop around fresh databases and embedded servers.
    await asyncio.get_running_loop().run_in_executor(None, execute, args)


def main() -> None:
    execute(arguments())


if __name__ == "__main__":
    main()
