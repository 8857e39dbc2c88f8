"""The one composition root: builds the application's object graph from settings.

Every dependency is a keyword argument with a production default; tests call the same function
with other arguments (a fixed clock, a recording notifier). It neither migrates nor seeds: the
CLI does that before serving.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
import redis.asyncio
from exodrive.v1 import booking_pb2_grpc, fleet_pb2_grpc, inbox_pb2_grpc, webhook_pb2_grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.cache import RedisCache
from server.interceptors import build_cache, build_interceptors
from server.metrics import Metrics, PoolStats, WebhookMetrics
from server.policy import PolicyTable
from server.servicers.booking import BookingServicer
from server.servicers.fleet import FleetServicer
from server.servicers.inbox import InboxServicer
from server.servicers.webhook import WebhookServicer, provider_checks
from server.settings import Settings
from services.booking import BookingService
from services.changes import ChangeNotifier
from services.clock import Clock, SystemClock
from services.fleet import FleetService
from services.inbox import InboxService
from services.storage.engine import create_engine
from services.storage.inbox_unit_of_work import inbox_unit_of_work_factory
from services.storage.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from services.webhook_signature import SignatureVerifier
from services.webhooks import WebhookService


@dataclass
class ServicerRegistration:
    service_name: str  # "exodrive.v1.FleetService"
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: object


@dataclass
class Application:
    settings: Settings
    engine: AsyncEngine
    redis: redis.asyncio.Redis | None
    clock: Clock
    uow: UnitOfWorkFactory
    notifier: ChangeNotifier
    fleet: FleetService
    bookings: BookingService
    inbox: InboxService
    webhooks: WebhookService
    servicers: list[ServicerRegistration] = field(default_factory=list)
    interceptors: list[grpc.aio.ServerInterceptor] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)

    async def ping_database(self) -> bool:
        """Readiness: True when PostgreSQL answers a query."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def close(self) -> None:
        """Disposes the database pool and closes Redis; safe to call twice."""
        if isinstance(self.notifier, RedisCache):
            await self.notifier.aclose()  # its replay loop of failed invalidations
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


def database_url_of(settings: Settings) -> str:
    if not settings.database_url:
        raise ValueError("settings.database_url is not set (the CLI starts an embedded server first)")
    return settings.database_url


async def build_application(
    settings: Settings,
    *,
    clock: Clock | None = None,
    notifier: ChangeNotifier | None = None,
    engine: AsyncEngine | None = None,
    redis_client: redis.asyncio.Redis | None = None,
    metrics: Metrics | None = None,
) -> Application:
    engine = engine or create_engine(
        database_url_of(settings),
        pool_size=settings.db_pool_size,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        connect_timeout_seconds=settings.db_connect_timeout_seconds,
        pool_timeout_seconds=settings.db_pool_timeout_seconds,
    )
    if redis_client is None and settings.redis_url:
        redis_client = redis.asyncio.Redis.from_url(settings.redis_url)
    clock = clock or SystemClock(settings.business_timezone)
    metrics = metrics or Metrics()
    pool: Any = engine.pool
    metrics.track_db_pool(lambda: PoolStats(pool.size(), pool.checkedout(), max(0, pool.overflow())))
    cache = build_cache(settings, redis_client, metrics)
    # The cache is told of every committed change, even when switched off here: other processes
    # sharing this Redis may have it on.
    notifier = notifier or cache
    session_role = settings.db_session_role or None
    # Taking a connection may wait for the pool, then for a new connection's start-up.
    acquire_timeout = settings.db_pool_timeout_seconds + settings.db_connect_timeout_seconds
    uow = unit_of_work_factory(engine, session_role=session_role, acquire_timeout=acquire_timeout)

    fleet = FleetService(
        uow,
        clock,
        notifier,
        tax_rate=settings.tax_rate,
        maximum_days=settings.max_rental_days,
        currency=settings.currency,
        max_advance_days=settings.max_advance_days,
    )
    bookings = BookingService(
        uow,
        clock,
        notifier,
        fleet,
        hold=timedelta(minutes=settings.hold_minutes),
        access_token_grace=timedelta(days=settings.access_token_grace_days),
    )
    inbox_uow = inbox_unit_of_work_factory(engine, session_role=session_role, acquire_timeout=acquire_timeout)
    inbox = InboxService(inbox_uow)
    secrets = [secret.get_secret_value() for secret in settings.resend_webhook_secrets]
    webhooks = WebhookService(inbox_uow, SignatureVerifier(secrets, clock), WebhookMetrics(metrics))
    # A provider's signature is proven by the interceptors (the service's verifier), before its
    # delivery may spend the provider's rate-limit budget.
    interceptors = build_interceptors(
        settings,
        PolicyTable(),
        metrics,
        redis_client=redis_client,
        cache=cache,
        providers=provider_checks(webhooks),
    )
    servicers = [
        ServicerRegistration(
            "exodrive.v1.FleetService",
            fleet_pb2_grpc.add_FleetServiceServicer_to_server,
            FleetServicer(fleet, default_currency=settings.currency),
        ),
        ServicerRegistration(
            "exodrive.v1.BookingService",
            booking_pb2_grpc.add_BookingServiceServicer_to_server,
            BookingServicer(bookings),
        ),
        ServicerRegistration(
            "exodrive.v1.InboxService",
            inbox_pb2_grpc.add_InboxServiceServicer_to_server,
            InboxServicer(inbox),
        ),
        ServicerRegistration(
            "exodrive.v1.WebhookService",
            webhook_pb2_grpc.add_WebhookServiceServicer_to_server,
            WebhookServicer(webhooks),
        ),
    ]
    return Application(
        settings=settings,
        engine=engine,
        redis=redis_client,
        clock=clock,
        uow=uow,
        notifier=notifier,
        fleet=fleet,
        bookings=bookings,
        inbox=inbox,
        webhooks=webhooks,
        servicers=servicers,
        interceptors=interceptors,
        metrics=metrics,
    )
