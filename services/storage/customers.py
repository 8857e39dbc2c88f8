"""Customers, found by case-insensitive email."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.model import Contact
from services.storage.tables import customers


class CustomerRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def find_or_create(self, contact: Contact, subject: str | None, now: datetime) -> UUID:
        """The customer with this email (any case), created if new.

        An existing customer's name, phone and subject are left alone: whoever books with an
        email must not be able to rewrite the record of its owner.
        """
        statement = (
            insert(customers)
            .values(
                email=contact.email,
                full_name=contact.full_name,
                phone=contact.phone,
                subject=subject,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_update(
                index_elements=[func.lower(customers.c.email)],
                # A no-op write so that RETURNING yields the existing row's id.
                set_={"email": customers.c.email},
            )
            .returning(customers.c.id)
        )
        customer_id: UUID = await self._db.scalar(statement)
        return customer_id

    async def by_email(self, email: str) -> UUID | None:
        found: UUID | None = await self._db.scalar(
            select(customers.c.id).where(func.lower(customers.c.email) == email.lower())
        )
        return found

    async def latest_contact_of_subject(self, subject: str) -> tuple[UUID, Contact] | None:
        """The customer an account booked as before, for bookings that carry no contact."""
        row = (
            await self._db.execute(
                select(customers)
                .where(customers.c.subject == subject)
                .order_by(customers.c.created_at.desc(), customers.c.id)
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        return row.id, Contact(row.full_name, row.email, row.phone)
