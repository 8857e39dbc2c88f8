"""Bookings and their audit events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, and_, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.model import HOLDING_STATUSES, ActorType, Booking, BookingEvent, BookingStatus, Contact
from services.pricing import Fee, PriceQuote
from services.storage.tables import booking_events, bookings

# Holding statuses whose hold does not run out (a PENDING hold counts only until it expires).
_FIRM_HOLDS = sorted(status.value for status in HOLDING_STATUSES - {BookingStatus.PENDING})


@dataclass(frozen=True)
class BookingCursor:
    """Position after the last booking of a page, newest first."""

    created_at: datetime
    id: UUID


@dataclass(frozen=True)
class NewBooking:
    car_id: UUID
    car_key: int
    customer_id: UUID
    owner_subject: str | None
    request_id: UUID
    request_fingerprint: str
    start_date: date
    end_date: date
    contact: Contact
    notes: str
    price: PriceQuote
    access_token_hash: str | None
    access_token_expires_at: datetime | None
    hold_expires_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class StoredBooking:
    """A booking with the stored facts that never leave the service layer."""

    booking: Booking
    request_fingerprint: str
    access_token_hash: str | None
    access_token_expires_at: datetime | None


@dataclass(frozen=True)
class ExpiredHold:
    booking_id: UUID
    car_id: UUID


def _price(row: Row[Any]) -> PriceQuote:
    return PriceQuote(
        days=row.days,
        daily_rate_cents=row.daily_rate_cents,
        rental_cents=row.rental_cents,
        fees=tuple(Fee(f["name"], int(f["amount_cents"]), bool(f["optional"])) for f in row.fees),
        fees_total_cents=row.fees_total_cents,
        discount_percent=row.discount_percent,
        discount_cents=row.discount_cents,
        discounted_subtotal_cents=row.discounted_subtotal_cents,
        tax_rate_basis_points=row.tax_rate_basis_points,
        tax_cents=row.tax_cents,
        total_cents=row.total_cents,
        deposit_cents=row.deposit_cents,
        currency=row.currency,
    )


def _stored(row: Row[Any], events: tuple[BookingEvent, ...] = ()) -> StoredBooking:
    booking = Booking(
        id=row.id,
        car_id=row.car_id,
        customer_id=row.customer_id,
        contact=Contact(row.contact_name, row.contact_email, row.contact_phone),
        owner_subject=row.owner_subject,
        start_date=row.start_date,
        end_date=row.end_date,
        status=BookingStatus(row.status),
        price=_price(row),
        notes=row.notes,
        created_at=row.created_at,
        updated_at=row.updated_at,
        hold_expires_at=row.hold_expires_at,
        events=events,
    )
    return StoredBooking(booking, row.request_fingerprint, row.access_token_hash, row.access_token_expires_at)


class BookingRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def add(self, new: NewBooking) -> UUID:
        price = new.price
        booking_id: UUID = await self._db.scalar(
            insert(bookings)
            .values(
                car_id=new.car_id,
                car_key=new.car_key,
                customer_id=new.customer_id,
                owner_subject=new.owner_subject,
                request_id=new.request_id,
                request_fingerprint=new.request_fingerprint,
                start_date=new.start_date,
                end_date=new.end_date,
                status=BookingStatus.PENDING.value,
                contact_name=new.contact.full_name,
                contact_email=new.contact.email,
                contact_phone=new.contact.phone,
                notes=new.notes,
                currency=price.currency,
                days=price.days,
                daily_rate_cents=price.daily_rate_cents,
                rental_cents=price.rental_cents,
                fees=[
                    {"name": f.name, "amount_cents": f.amount_cents, "optional": f.optional}
                    for f in price.fees
                ],
                fees_total_cents=price.fees_total_cents,
                discount_percent=price.discount_percent,
                discount_cents=price.discount_cents,
                discounted_subtotal_cents=price.discounted_subtotal_cents,
                tax_rate_basis_points=price.tax_rate_basis_points,
                tax_cents=price.tax_cents,
                total_cents=price.total_cents,
                deposit_cents=price.deposit_cents,
                access_token_hash=new.access_token_hash,
                access_token_expires_at=new.access_token_expires_at,
                hold_expires_at=new.hold_expires_at,
                created_at=new.created_at,
                updated_at=new.created_at,
            )
            .returning(bookings.c.id)
        )
        return booking_id

    async def get(
        self, booking_id: UUID, *, for_update: bool = False, with_events: bool = False
    ) -> StoredBooking | None:
        query = select(bookings).where(bookings.c.id == booking_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._db.execute(query)).first()
        if row is None:
            return None
        events = await self.events(booking_id) if with_events else ()
        return _stored(row, events)

    async def by_request_id(self, request_id: UUID) -> StoredBooking | None:
        row = (await self._db.execute(select(bookings).where(bookings.c.request_id == request_id))).first()
        return None if row is None else _stored(row)

    async def page(
        self,
        *,
        limit: int,
        after: BookingCursor | None = None,
        owner_subject: str | None = None,
        status: BookingStatus | None = None,
        car_id: UUID | None = None,
    ) -> list[Booking]:
        query = select(bookings)
        if owner_subject is not None:
            query = query.where(bookings.c.owner_subject == owner_subject)
        if status is not None:
            query = query.where(bookings.c.status == status.value)
        if car_id is not None:
            query = query.where(bookings.c.car_id == car_id)
        if after is not None:
            query = query.where(
                tuple_(bookings.c.created_at, bookings.c.id) < tuple_(after.created_at, after.id)
            )
        query = query.order_by(bookings.c.created_at.desc(), bookings.c.id.desc()).limit(limit)
        return [_stored(row).booking for row in await self._db.execute(query)]

    async def set_status(
        self, booking_id: UUID, status: BookingStatus, now: datetime, *, clear_hold: bool = False
    ) -> None:
        values: dict[str, object] = {"status": status.value, "updated_at": now}
        if clear_hold:
            values["hold_expires_at"] = None
        await self._db.execute(update(bookings).where(bookings.c.id == booking_id).values(**values))

    async def add_event(
        self,
        booking_id: UUID,
        *,
        occurred_at: datetime,
        actor_type: ActorType,
        actor_id: str,
        from_status: BookingStatus | None,
        to_status: BookingStatus,
        reason: str,
    ) -> None:
        await self._db.execute(
            insert(booking_events).values(
                booking_id=booking_id,
                occurred_at=occurred_at,
                actor_type=actor_type.value,
                actor_id=actor_id,
                from_status=None if from_status is None else from_status.value,
                to_status=to_status.value,
                reason=reason,
            )
        )

    async def events(self, booking_id: UUID) -> tuple[BookingEvent, ...]:
        rows = await self._db.execute(
            select(booking_events)
            .where(booking_events.c.booking_id == booking_id)
            .order_by(booking_events.c.id)
        )
        return tuple(
            BookingEvent(
                occurred_at=row.occurred_at,
                actor_type=ActorType(row.actor_type),
                actor_id=row.actor_id,
                from_status=None if row.from_status is None else BookingStatus(row.from_status),
                to_status=BookingStatus(row.to_status),
                reason=row.reason,
            )
            for row in rows
        )

    async def expire_holds(self, now: datetime, *, car_id: UUID | None = None) -> list[ExpiredHold]:
        """Cancels PENDING bookings whose hold has passed, with a SYSTEM audit event each."""
        query = (
            update(bookings)
            .where(bookings.c.status == BookingStatus.PENDING.value, bookings.c.hold_expires_at <= now)
            .values(status=BookingStatus.CANCELLED.value, updated_at=now)
            .returning(bookings.c.id, bookings.c.car_id)
        )
        if car_id is not None:
            query = query.where(bookings.c.car_id == car_id)
        expired = [ExpiredHold(row.id, row.car_id) for row in await self._db.execute(query)]
        if expired:
            await self._db.execute(
                insert(booking_events),
                [
                    {
                        "booking_id": hold.booking_id,
                        "occurred_at": now,
                        "actor_type": ActorType.SYSTEM.value,
                        "actor_id": "",
                        "from_status": BookingStatus.PENDING.value,
                        "to_status": BookingStatus.CANCELLED.value,
                        "reason": "hold expired",
                    }
                    for hold in expired
                ],
            )
        return expired

    async def holds(self, car_id: UUID, start: date, end: date, now: datetime) -> list[tuple[date, date]]:
        """(start, end) of bookings holding the car on some day of [start, end), expired holds aside."""
        rows = await self._db.execute(
            select(bookings.c.start_date, bookings.c.end_date)
            .where(
                bookings.c.car_id == car_id,
                bookings.c.start_date < end,
                bookings.c.end_date > start,
                or_(
                    bookings.c.status.in_(_FIRM_HOLDS),
                    and_(bookings.c.status == BookingStatus.PENDING.value, bookings.c.hold_expires_at > now),
                ),
            )
            .order_by(bookings.c.start_date)
        )
        return [(row.start_date, row.end_date) for row in rows]
