"""Fixtures shared by the inbox and webhook tests: an engine, the services as the application role
(so row level security applies), and bookings inserted directly."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest
from resend_samples import SECRET
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.settings import Settings
from services.clock import SystemClock
from services.inbox import InboxService
from services.storage.engine import create_engine
from services.storage.inbox_unit_of_work import InboxUnitOfWorkFactory, inbox_unit_of_work_factory
from services.webhook_signature import SignatureVerifier
from services.webhooks import WebhookService

APP_ROLE = "exodrive_app"


@pytest.fixture(scope="module")
async def engine(migrated_settings: Settings) -> AsyncIterator[AsyncEngine]:
    assert migrated_settings.database_url is not None
    engine = create_engine(migrated_settings.database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
def uow(engine: AsyncEngine) -> InboxUnitOfWorkFactory:
    # As the non-superuser application role: the tests pass only if grants and policies allow it.
    return inbox_unit_of_work_factory(engine, session_role=APP_ROLE)


@pytest.fixture(scope="module")
def webhooks(uow: InboxUnitOfWorkFactory) -> WebhookService:
    return WebhookService(uow, SignatureVerifier([SECRET], SystemClock("UTC")))


@pytest.fixture(scope="module")
def inbox(uow: InboxUnitOfWorkFactory) -> InboxService:
    return InboxService(uow)


async def insert_booking(engine: AsyncEngine) -> uuid.UUID:
    """A CONFIRMED booking of a fresh car, inserted as the superuser (the booking rules are not
    under test here)."""
    suffix = uuid.uuid4().hex[:12]
    async with engine.begin() as db:
        car = (
            await db.execute(
                text(
                    "INSERT INTO cars (slug, name, daily_rate_cents, deposit_cents, currency) "
                    "VALUES (:slug, 'Test car', 50000, 100000, 'USD') RETURNING id, key"
                ),
                {"slug": f"car-{suffix}"},
            )
        ).one()
        customer = (
            await db.execute(
                text("INSERT INTO customers (email, full_name) VALUES (:email, 'Ada') RETURNING id"),
                {"email": f"ada-{suffix}@example.com"},
            )
        ).scalar_one()
        booking: uuid.UUID = (
            await db.execute(
                text(
                    "INSERT INTO bookings (car_id, car_key, customer_id, request_id, request_fingerprint,"
                    " start_date, end_date, status, contact_name, contact_email, currency, days,"
                    " daily_rate_cents, rental_cents, fees_total_cents, discount_percent, discount_cents,"
                    " discounted_subtotal_cents, tax_rate_basis_points, tax_cents, total_cents,"
                    " deposit_cents) VALUES (:car, :key, :customer, :request, 'x', :start, :end,"
                    " 'CONFIRMED', 'Ada', 'ada@example.com', 'USD', 2, 50000, 100000, 0, 0, 0, 100000,"
                    " 1000, 10000, 110000, 100000) RETURNING id"
                ),
                {
                    "car": car.id,
                    "key": car.key,
                    "customer": customer,
                    "request": uuid.uuid4(),
                    "start": date(2031, 5, 1),
                    "end": date(2031, 5, 3),
                },
            )
        ).scalar_one()
    return booking
