"""Builders shared by the fleet and booking tests: an application on a fixed clock, cars with
unique slugs, booking requests."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from server.bootstrap import Application, build_application
from server.settings import Settings
from services.booking import BookingRequest
from services.changes import RecordingNotifier
from services.clock import FixedClock
from services.model import Car, CarDraft, Contact
from services.pricing import Fee
from services.principal import Principal, Role

# 11:00 in New York on 1 June 2030: "today" in the business timezone is 2030-06-01.
NOW = datetime(2030, 6, 1, 15, 0, tzinfo=UTC)
TODAY = date(2030, 6, 1)

ADMIN = Principal(Role.ADMIN, "admin-1")
ANON = Principal(Role.ANONYMOUS)


def customer(subject: str | None = None) -> Principal:
    return Principal(Role.CUSTOMER, subject or f"user-{uuid.uuid4().hex[:8]}")


def guest(token: str | None) -> Principal:
    return Principal(Role.ANONYMOUS, None, token)


def day(offset: int) -> date:
    return TODAY + timedelta(days=offset)


def from_today(offset: int) -> date:
    """A day relative to the real date, for applications on the system clock (a rental starts
    at most max_advance_days ahead, so the fixed TODAY would soon be too far)."""
    return date.today() + timedelta(days=offset)


async def make_app(settings: Settings) -> tuple[Application, FixedClock, RecordingNotifier]:
    clock = FixedClock(NOW, settings.business_timezone)
    notifier = RecordingNotifier()
    app = await build_application(settings, clock=clock, notifier=notifier)
    return app, clock, notifier


def car_draft(**overrides: object) -> CarDraft:
    values: dict[str, object] = {
        "slug": f"test-car-{uuid.uuid4().hex[:12]}",
        "name": "Test Car",
        "description": "A car for tests",
        "category": "test",
        "daily_rate_cents": 5000,
        "deposit_cents": 100000,
        "currency": "USD",
        "discount_percent": 10,
        "minimum_days": 1,
        "fees": (Fee("Cleaning", 2500), Fee("Delivery", 1500), Fee("Child seat", 900, optional=True)),
    }
    values.update(overrides)
    return CarDraft(**values)  # type: ignore[arg-type]


async def make_car(app: Application, **overrides: object) -> Car:
    return await app.fleet.create_car(ADMIN, car_draft(**overrides))


def contact(email: str | None = None) -> Contact:
    return Contact("Ada Lovelace", email or f"ada-{uuid.uuid4().hex[:8]}@example.com", "+1 555 0100")


def booking_request(car_id: uuid.UUID, start: date, end: date, **overrides: object) -> BookingRequest:
    values: dict[str, object] = {
        "request_id": uuid.uuid4(),
        "car_id": car_id,
        "start_date": start,
        "end_date": end,
        "contact": contact(),
        "notes": "",
    }
    values.update(overrides)
    return BookingRequest(**values)  # type: ignore[arg-type]
