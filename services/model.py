"""The domain's records: cars, customers, bookings and their audit events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from services.pricing import Fee, PriceQuote


class BookingStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


# Statuses that hold a car's days: the one definition that availability, the no-overlap
# exclusion constraint (services/storage/tables.py, migration 0005) and creation share. ACTIVE
# holds them too: the car is with the customer (design §4: no overlapping active bookings, ever).
HOLDING_STATUSES = frozenset({BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.ACTIVE})


def holding_statuses_sql() -> str:
    """The holding statuses as the SQL list the exclusion constraint's predicate names, in
    state-machine order (so that the schema's text is stable)."""
    return ", ".join(f"'{status.value}'" for status in BookingStatus if status in HOLDING_STATUSES)


# The state machine of design §4: from -> the statuses it may move to.
TRANSITIONS: dict[BookingStatus, frozenset[BookingStatus]] = {
    BookingStatus.PENDING: frozenset({BookingStatus.CONFIRMED, BookingStatus.CANCELLED}),
    BookingStatus.CONFIRMED: frozenset({BookingStatus.ACTIVE, BookingStatus.CANCELLED}),
    BookingStatus.ACTIVE: frozenset({BookingStatus.COMPLETED}),
    BookingStatus.COMPLETED: frozenset(),
    BookingStatus.CANCELLED: frozenset(),
}


class ActorType(StrEnum):
    CUSTOMER = "CUSTOMER"
    GUEST = "GUEST"
    ADMIN = "ADMIN"
    SERVICE = "SERVICE"
    SYSTEM = "SYSTEM"


@dataclass(frozen=True, kw_only=True)
class CarDraft:
    """The writable fields of a car."""

    slug: str
    name: str
    description: str = ""
    category: str = ""
    daily_rate_cents: int = 0
    deposit_cents: int = 0
    currency: str = "USD"
    discount_percent: int = 0
    minimum_days: int = 1
    fees: tuple[Fee, ...] = ()
    available: bool = True
    featured: bool = False
    hidden: bool = False


@dataclass(frozen=True, kw_only=True)
class Car(CarDraft):
    id: UUID
    created_at: datetime
    updated_at: datetime

    @property
    def bookable(self) -> bool:
        """In service and not hidden (domain §3): only then may it be priced, held or booked."""
        return self.available and not self.hidden


@dataclass(frozen=True)
class Contact:
    full_name: str
    email: str
    phone: str = ""


@dataclass(frozen=True)
class BookingEvent:
    occurred_at: datetime
    actor_type: ActorType
    actor_id: str
    from_status: BookingStatus | None
    to_status: BookingStatus
    reason: str


@dataclass(frozen=True)
class Booking:
    id: UUID
    car_id: UUID
    customer_id: UUID
    contact: Contact
    owner_subject: str | None
    start_date: date
    end_date: date
    status: BookingStatus
    price: PriceQuote
    notes: str
    created_at: datetime
    updated_at: datetime
    hold_expires_at: datetime | None
    events: tuple[BookingEvent, ...] = ()


@dataclass(frozen=True)
class Availability:
    car_id: UUID
    start_date: date
    end_date: date
    unavailable_dates: tuple[date, ...]

    @property
    def available(self) -> bool:
        return not self.unavailable_dates
