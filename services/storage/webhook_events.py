"""Received webhook deliveries, stored raw under their provider's event id."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Row, func, null, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.email_status import WebhookEventStatus
from services.inbox_model import Cursor, WebhookEvent, WebhookEventFilter, WebhookEventPage
from services.storage.inbox_tables import webhook_events


def _event(row: Row[Any]) -> WebhookEvent:
    return WebhookEvent(
        id=row.id,
        provider=row.provider,
        provider_event_id=row.provider_event_id,
        event_type=row.event_type,
        body=bytes(row.body),
        headers=dict(row.headers),
        signed_at=row.signed_at,
        received_at=row.received_at,
        status=WebhookEventStatus(row.status),
        attempts=row.attempts,
        last_error=row.last_error,
        processed_at=row.processed_at,
    )


def _processed_at(status: WebhookEventStatus) -> ColumnElement[Any]:
    # A failed attempt processed nothing.
    return null() if status is WebhookEventStatus.FAILED else func.now()


class WebhookEventRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def add(
        self,
        *,
        provider: str,
        provider_event_id: str,
        event_type: str | None,
        body: bytes,
        headers: dict[str, str],
        signed_at: datetime,
        status: WebhookEventStatus,
        last_error: str | None,
    ) -> UUID | None:
        """The new row's id, or None when this provider event id is already stored.

        ON CONFLICT DO NOTHING waits for a concurrent insert of the same id to commit, so
        simultaneous redeliveries store one row and the others see it as a duplicate.
        """
        statement = (
            insert(webhook_events)
            .values(
                provider=provider,
                provider_event_id=provider_event_id,
                event_type=event_type,
                body=body,
                headers=headers,
                signed_at=signed_at,
                status=status.value,
                last_error=last_error,
                processed_at=_processed_at(status),
            )
            .on_conflict_do_nothing(
                index_elements=[webhook_events.c.provider, webhook_events.c.provider_event_id]
            )
            .returning(webhook_events.c.id)
        )
        event_id: UUID | None = (await self._db.execute(statement)).scalar_one_or_none()
        return event_id

    async def by_provider_id(self, provider: str, provider_event_id: str) -> WebhookEvent | None:
        c = webhook_events.c
        query = select(webhook_events).where(c.provider == provider, c.provider_event_id == provider_event_id)
        row = (await self._db.execute(query)).first()
        return _event(row) if row else None

    async def get(self, event_id: UUID, *, for_update: bool = False) -> WebhookEvent | None:
        query = select(webhook_events).where(webhook_events.c.id == event_id)
        if for_update:
            # Replays of one event run one at a time.
            query = query.with_for_update()
        row = (await self._db.execute(query)).first()
        return _event(row) if row else None

    async def record_attempt(
        self, event_id: UUID, status: WebhookEventStatus, event_type: str | None, last_error: str | None
    ) -> WebhookEvent:
        c = webhook_events.c
        statement = (
            update(webhook_events)
            .where(c.id == event_id)
            .values(
                status=status.value,
                event_type=event_type,
                last_error=last_error,
                attempts=c.attempts + 1,
                processed_at=_processed_at(status),
            )
            .returning(webhook_events)
        )
        return _event((await self._db.execute(statement)).one())

    async def page(self, where: WebhookEventFilter, after: Cursor | None, limit: int) -> WebhookEventPage:
        c = webhook_events.c
        conditions: list[ColumnElement[bool]] = []
        if where.provider is not None:
            conditions.append(c.provider == where.provider)
        if where.status is not None:
            conditions.append(c.status == where.status.value)
        if where.received_from is not None:
            conditions.append(c.received_at >= where.received_from)
        if where.received_before is not None:
            conditions.append(c.received_at < where.received_before)
        if after is not None:
            conditions.append(tuple_(c.received_at, c.id) < tuple_(after.at, after.id))
        query = (
            select(webhook_events)
            .where(*conditions)
            .order_by(c.received_at.desc(), c.id.desc())
            .limit(limit + 1)
        )
        rows = (await self._db.execute(query)).all()
        events = [_event(r) for r in rows[:limit]]
        last = events[-1] if len(rows) > limit else None
        return WebhookEventPage(events, Cursor(last.received_at, last.id) if last else None)
