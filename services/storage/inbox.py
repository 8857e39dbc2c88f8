"""Inbox emails and their append-only event history."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Row, case, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.email_status import PRECEDENCE, EmailStatus
from services.inbox_model import (
    Cursor,
    Email,
    EmailEvent,
    EmailFilter,
    EmailPage,
    EmailStats,
    LinkedBooking,
)
from services.resend_events import EmailEventFacts
from services.storage.inbox_tables import email_events, inbox_emails
from services.storage.tables import bookings


def _email(row: Row[Any]) -> Email:
    return Email(
        id=row.id,
        resend_email_id=row.resend_email_id,
        sender=row.sender,
        recipients=list(row.recipients),
        subject=row.subject,
        email_type=row.email_type,
        tags=dict(row.tags),
        booking_id=row.booking_id,
        status=EmailStatus(row.status),
        last_event_type=row.last_event_type,
        last_event_at=row.last_event_at,
        delivered_at=row.delivered_at,
        opened_at=row.opened_at,
        clicked_at=row.clicked_at,
        bounce_type=row.bounce_type,
        bounce_description=row.bounce_description,
        complained=row.complained,
        sent_at=row.sent_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _conditions(where: EmailFilter) -> list[ColumnElement[bool]]:
    c = inbox_emails.c
    conditions: list[ColumnElement[bool]] = []
    if where.status is not None:
        conditions.append(c.status == where.status.value)
    if where.email_type is not None:
        conditions.append(c.email_type == where.email_type)
    if where.recipient is not None:
        conditions.append(c.recipient == where.recipient)
    if where.booking_id is not None:
        conditions.append(c.booking_id == where.booking_id)
    if where.sent_from is not None:
        conditions.append(c.sent_at >= where.sent_from)
    if where.sent_before is not None:
        conditions.append(c.sent_at < where.sent_before)
    if where.search:
        # autoescape makes `%`, `_` and the escape character literal: user text never becomes a
        # pattern, and it travels as a bound parameter, never pasted into SQL.
        conditions.append(
            or_(
                c.recipient.icontains(where.search, autoescape=True),
                c.sender.icontains(where.search, autoescape=True),
                c.subject.icontains(where.search, autoescape=True),
            )
        )
    return conditions


class InboxRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def apply(self, facts: EmailEventFacts, webhook_event_id: UUID, payload: object) -> UUID:
        """Upsert the email from one event and append the event; safe in any order and repeated.

        The status moves only to a newer (time, precedence) pair; first-seen times keep the
        earliest value; facts already known (bounce, sender, link) are never overwritten or erased.
        """
        c = inbox_emails.c
        rank = PRECEDENCE[facts.status]
        # An unknown booking id links nothing rather than failing the foreign key.
        booking_id = (
            select(bookings.c.id).where(bookings.c.id == facts.booking_id).scalar_subquery()
            if facts.booking_id is not None
            else None
        )
        at = facts.occurred_at
        values: dict[str, Any] = {
            "resend_email_id": facts.provider_email_id,
            "sender": facts.sender,
            "recipients": facts.recipients,
            "recipient": facts.recipients[0].lower() if facts.recipients else None,
            "subject": facts.subject,
            "email_type": facts.email_type,
            "tags": facts.tags,
            "booking_id": booking_id,
            "status": facts.status.value,
            "status_rank": rank,
            "last_event_type": facts.event_type,
            "last_event_at": at,
            "delivered_at": at if facts.status is EmailStatus.DELIVERED else None,
            "opened_at": at if facts.status is EmailStatus.OPENED else None,
            "clicked_at": at if facts.status is EmailStatus.CLICKED else None,
            "bounce_type": facts.bounce_type,
            "bounce_description": facts.bounce_description,
            "complained": facts.status is EmailStatus.COMPLAINED,
            "sent_at": facts.email_created_at or at,
        }
        upsert = insert(inbox_emails).values(**values)
        new = upsert.excluded
        newer = tuple_(new.last_event_at, new.status_rank) > tuple_(c.last_event_at, c.status_rank)

        def latest(column: str) -> ColumnElement[Any]:
            return case((newer, new[column]), else_=c[column])

        statement = upsert.on_conflict_do_update(
            index_elements=[c.resend_email_id],
            set_={
                "sender": func.coalesce(c.sender, new.sender),
                "recipients": case((func.cardinality(c.recipients) == 0, new.recipients), else_=c.recipients),
                "recipient": func.coalesce(c.recipient, new.recipient),
                "subject": func.coalesce(c.subject, new.subject),
                "email_type": func.coalesce(c.email_type, new.email_type),
                # Keys already stored win over a later event's.
                "tags": new.tags.op("||")(c.tags),
                "booking_id": func.coalesce(c.booking_id, new.booking_id),
                "status": latest("status"),
                "status_rank": latest("status_rank"),
                "last_event_type": latest("last_event_type"),
                "last_event_at": latest("last_event_at"),
                # LEAST ignores NULLs: the first time stays the first time.
                "delivered_at": func.least(c.delivered_at, new.delivered_at),
                "opened_at": func.least(c.opened_at, new.opened_at),
                "clicked_at": func.least(c.clicked_at, new.clicked_at),
                "bounce_type": func.coalesce(c.bounce_type, new.bounce_type),
                "bounce_description": func.coalesce(c.bounce_description, new.bounce_description),
                "complained": c.complained.op("OR")(new.complained),
                "sent_at": func.least(c.sent_at, new.sent_at),
                "updated_at": func.now(),
            },
        ).returning(c.id)
        email_id: UUID = (await self._db.execute(statement)).scalar_one()
        await self._db.execute(
            insert(email_events)
            .values(
                email_id=email_id,
                webhook_event_id=webhook_event_id,
                event_type=facts.event_type,
                status=facts.status.value,
                occurred_at=at,
                payload=payload,
            )
            .on_conflict_do_nothing(index_elements=[email_events.c.webhook_event_id])
        )
        return email_id

    async def get(self, email_id: UUID) -> Email | None:
        row = (await self._db.execute(select(inbox_emails).where(inbox_emails.c.id == email_id))).first()
        return _email(row) if row else None

    async def by_provider_id(self, resend_email_id: str) -> Email | None:
        query = select(inbox_emails).where(inbox_emails.c.resend_email_id == resend_email_id)
        row = (await self._db.execute(query)).first()
        return _email(row) if row else None

    async def events(self, email_id: UUID) -> list[EmailEvent]:
        e = email_events.c
        query = (
            select(e.webhook_event_id, e.event_type, e.status, e.occurred_at, e.received_at)
            .where(e.email_id == email_id)
            .order_by(e.occurred_at, e.id)
        )
        return [
            EmailEvent(r.webhook_event_id, r.event_type, EmailStatus(r.status), r.occurred_at, r.received_at)
            for r in await self._db.execute(query)
        ]

    async def linked_booking(self, booking_id: UUID) -> LinkedBooking | None:
        b = bookings.c
        query = select(b.id, b.car_id, b.status, b.start_date, b.end_date).where(b.id == booking_id)
        row = (await self._db.execute(query)).first()
        return LinkedBooking(row.id, row.car_id, row.status, row.start_date, row.end_date) if row else None

    async def page(self, where: EmailFilter, after: Cursor | None, limit: int) -> EmailPage:
        c = inbox_emails.c
        conditions = _conditions(where)
        query = select(inbox_emails).where(*conditions)
        if after is not None:
            query = query.where(tuple_(c.sent_at, c.id) < tuple_(after.at, after.id))
        # One row more than asked tells whether another page exists.
        query = query.order_by(c.sent_at.desc(), c.id.desc()).limit(limit + 1)
        rows = (await self._db.execute(query)).all()
        emails = [_email(r) for r in rows[:limit]]
        total = (
            await self._db.execute(select(func.count()).select_from(inbox_emails).where(*conditions))
        ).scalar_one()
        last = emails[-1] if len(rows) > limit else None
        return EmailPage(emails, Cursor(last.sent_at, last.id) if last else None, total)

    async def stats(self, sent_from: datetime | None, sent_before: datetime | None) -> EmailStats:
        c = inbox_emails.c
        conditions = _conditions(EmailFilter(sent_from=sent_from, sent_before=sent_before))
        bounced = or_(c.status == EmailStatus.BOUNCED.value, c.bounce_type.is_not(None))
        query = (
            select(
                c.status,
                c.email_type,
                func.count().label("n"),
                func.count(c.delivered_at).label("delivered"),
                func.count(c.opened_at).label("opened"),
                func.count().filter(bounced).label("bounced"),
                func.count().filter(c.complained).label("complained"),
            )
            .where(*conditions)
            .group_by(c.status, c.email_type)
        )
        by_status: dict[EmailStatus, int] = {}
        by_type: dict[str, int] = {}
        total = delivered = opened = bounced_n = complained = 0
        for row in await self._db.execute(query):
            status = EmailStatus(row.status)
            by_status[status] = by_status.get(status, 0) + row.n
            key = row.email_type or ""
            by_type[key] = by_type.get(key, 0) + row.n
            total += row.n
            delivered += row.delivered
            opened += row.opened
            bounced_n += row.bounced
            complained += row.complained
        return EmailStats(total, by_status, by_type, delivered, opened, bounced_n, complained)
