"""Inbox emails and their append-only event history."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Row, Text, any_, bindparam, func, literal, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
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


TRIGRAM = 3
# A page counts the matches up to this many; beyond, the total is reported as capped. Counting
# every match of a broad filter over 100,000 emails costs more than the page itself.
MAX_COUNTED = 1_000
# A search with at most this many trigram candidates reads them by id; with more, the matches
# are dense and the newest-first listing index finds a page sooner than fetching every candidate.
MAX_CANDIDATES = 2_000
# Migration 0004: the GIN index cannot serve `@>` under row level security (not LEAKPROOF), so a
# SECURITY DEFINER function that checks the caller is staff returns the candidates' ids.
SEARCH_CANDIDATES = text("SELECT inbox_search_candidates(:search, :max_rows)")
# For the rest of the transaction's page and count (and JIT off: disabling a plan type inflates
# costs past jit_above_cost, and compiling took ~70 ms of a 2 ms count); then back as they were.
NO_SEQSCAN = text(
    "SELECT current_setting('enable_seqscan'), current_setting('jit'),"
    " set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true)"
)
RESTORE_SEQSCAN = text("SELECT set_config('enable_seqscan', :seqscan, true), set_config('jit', :jit, true)")
# Every column but the search trigrams, which only the database reads.
EMAIL_COLUMNS = [column for column in inbox_emails.c if column.name != "search_trigrams"]


def _conditions(where: EmailFilter, candidates: list[UUID] | None = None) -> list[ColumnElement[bool]]:
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
        if candidates is not None:
            # Rows holding every trigram of the search (see SEARCH_CANDIDATES): a superset of
            # the matches, since trigrams may sit apart, so the ILIKE below decides.
            conditions.append(
                c.id == any_(bindparam("candidates", candidates, type_=ARRAY(PG_UUID(as_uuid=True))))
            )
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


# The upsert of the email and the append to its history, as one statement built once: the
# ingestion path runs it for every delivery, and building the equivalent SQLAlchemy construct
# per call cost more CPU than the database's work. The CASEs compare (time, precedence) as in
# services.email_status.PRECEDENCE; LEAST ignores NULLs, so a first time stays the first time;
# an unknown booking id links nothing rather than failing the foreign key.
APPLY_EVENT = text(
    """
    WITH email AS (
        INSERT INTO inbox_emails AS c (
            resend_email_id, sender, recipients, recipient, subject, email_type, tags, booking_id,
            status, status_rank, last_event_type, last_event_at, delivered_at, opened_at,
            clicked_at, bounce_type, bounce_description, complained, sent_at)
        VALUES (
            :resend_email_id, :sender, :recipients, :recipient, :subject, :email_type, :tags,
            (SELECT b.id FROM bookings AS b WHERE b.id = :booking_id),
            :status, :status_rank, :event_type, :at, :delivered_at, :opened_at,
            :clicked_at, :bounce_type, :bounce_description, :complained, :sent_at)
        ON CONFLICT (resend_email_id) DO UPDATE SET
            sender = coalesce(c.sender, excluded.sender),
            recipients = CASE WHEN cardinality(c.recipients) = 0
                              THEN excluded.recipients ELSE c.recipients END,
            recipient = coalesce(c.recipient, excluded.recipient),
            subject = coalesce(c.subject, excluded.subject),
            email_type = coalesce(c.email_type, excluded.email_type),
            -- Keys already stored win over a later event's.
            tags = excluded.tags || c.tags,
            booking_id = coalesce(c.booking_id, excluded.booking_id),
            -- The latest (time, precedence) event sets these four together.
            status = CASE WHEN (excluded.last_event_at, excluded.status_rank)
                               > (c.last_event_at, c.status_rank)
                          THEN excluded.status ELSE c.status END,
            status_rank = CASE WHEN (excluded.last_event_at, excluded.status_rank)
                                    > (c.last_event_at, c.status_rank)
                               THEN excluded.status_rank ELSE c.status_rank END,
            last_event_type = CASE WHEN (excluded.last_event_at, excluded.status_rank)
                                        > (c.last_event_at, c.status_rank)
                                   THEN excluded.last_event_type ELSE c.last_event_type END,
            last_event_at = CASE WHEN (excluded.last_event_at, excluded.status_rank)
                                      > (c.last_event_at, c.status_rank)
                                 THEN excluded.last_event_at ELSE c.last_event_at END,
            delivered_at = least(c.delivered_at, excluded.delivered_at),
            opened_at = least(c.opened_at, excluded.opened_at),
            clicked_at = least(c.clicked_at, excluded.clicked_at),
            bounce_type = coalesce(c.bounce_type, excluded.bounce_type),
            bounce_description = coalesce(c.bounce_description, excluded.bounce_description),
            complained = c.complained OR excluded.complained,
            sent_at = least(c.sent_at, excluded.sent_at),
            updated_at = now()
        RETURNING c.id
    ),
    history AS (
        INSERT INTO email_events (email_id, webhook_event_id, event_type, status, occurred_at, payload)
        SELECT email.id, :webhook_event_id, :event_type, :status, :at, :payload FROM email
        ON CONFLICT (webhook_event_id) DO NOTHING
    )
    SELECT id FROM email
    """
).bindparams(
    bindparam("recipients", type_=ARRAY(Text)),
    bindparam("tags", type_=JSONB),
    bindparam("payload", type_=JSONB),
    bindparam("booking_id", type_=PG_UUID(as_uuid=True)),
    bindparam("webhook_event_id", type_=PG_UUID(as_uuid=True)),
)


class InboxRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def apply(self, facts: EmailEventFacts, webhook_event_id: UUID, payload: object) -> UUID:
        """Upsert the email from one event and append the event; safe in any order and repeated.

        The status moves only to a newer (time, precedence) pair; first-seen times keep the
        earliest value; facts already known (bounce, sender, link) are never overwritten or erased.
        One statement, one round trip (see APPLY_EVENT).
        """
        at = facts.occurred_at
        params: dict[str, Any] = {
            "resend_email_id": facts.provider_email_id,
            "sender": facts.sender,
            "recipients": facts.recipients,
            "recipient": facts.recipients[0].lower() if facts.recipients else None,
            "subject": facts.subject,
            "email_type": facts.email_type,
            "tags": facts.tags,
            "booking_id": facts.booking_id,
            "status": facts.status.value,
            "status_rank": PRECEDENCE[facts.status],
            "event_type": facts.event_type,
            "at": at,
            "delivered_at": at if facts.status is EmailStatus.DELIVERED else None,
            "opened_at": at if facts.status is EmailStatus.OPENED else None,
            "clicked_at": at if facts.status is EmailStatus.CLICKED else None,
            "bounce_type": facts.bounce_type,
            "bounce_description": facts.bounce_description,
            "complained": facts.status is EmailStatus.COMPLAINED,
            "sent_at": facts.email_created_at or at,
            "webhook_event_id": webhook_event_id,
            "payload": payload,
        }
        email_id: UUID = (await self._db.execute(APPLY_EVENT, params)).scalar_one()
        return email_id

    async def get(self, email_id: UUID) -> Email | None:
        row = (await self._db.execute(select(*EMAIL_COLUMNS).where(inbox_emails.c.id == email_id))).first()
        return _email(row) if row else None

    async def by_provider_id(self, resend_email_id: str) -> Email | None:
        query = select(*EMAIL_COLUMNS).where(inbox_emails.c.resend_email_id == resend_email_id)
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
        candidates = await self._search_candidates(where.search)
        if candidates == []:
            return EmailPage([], None, 0)
        dense = candidates is None and where.search is not None and len(where.search) >= TRIGRAM
        if dense:
            # The planner guesses a substring ILIKE matches few rows, and so sorts a full scan
            # (~100 ms at 100,000 emails); the candidates say matches are many, so the
            # newest-first index reaches a page after a few rows.
            before = (await self._db.execute(NO_SEQSCAN)).one()
        conditions = _conditions(where, candidates)
        query = select(*EMAIL_COLUMNS).where(*conditions)
        if after is not None:
            query = query.where(tuple_(c.sent_at, c.id) < tuple_(after.at, after.id))
        # One row more than asked tells whether another page exists.
        query = query.order_by(c.sent_at.desc(), c.id.desc()).limit(limit + 1)
        rows = (await self._db.execute(query)).all()
        emails = [_email(r) for r in rows[:limit]]
        matches = select(literal(1)).select_from(inbox_emails).where(*conditions).limit(MAX_COUNTED + 1)
        counted: int = (
            await self._db.execute(select(func.count()).select_from(matches.subquery()))
        ).scalar_one()
        if dense:
            await self._db.execute(RESTORE_SEQSCAN, {"seqscan": before[0], "jit": before[1]})
        last = emails[-1] if len(rows) > limit else None
        cursor = Cursor(last.sent_at, last.id) if last else None
        return EmailPage(emails, cursor, min(counted, MAX_COUNTED), capped=counted > MAX_COUNTED)

    async def _search_candidates(self, search: str | None) -> list[UUID] | None:
        """Ids that may match `search`, or None when the search is too short for trigrams or
        matches so many rows that the listing index serves it better."""
        if search is None or len(search) < TRIGRAM:
            return None
        rows = await self._db.execute(SEARCH_CANDIDATES, {"search": search, "max_rows": MAX_CANDIDATES + 1})
        ids = [row[0] for row in rows]
        return ids if len(ids) <= MAX_CANDIDATES else None

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
