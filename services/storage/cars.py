"""Cars and their fees."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, and_, delete, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.model import Car, CarDraft
from services.pricing import Fee
from services.storage.tables import car_fees, cars

# Car columns a caller may write, besides fees (kept in their own table).
WRITABLE_COLUMNS = (
    "slug",
    "name",
    "description",
    "category",
    "daily_rate_cents",
    "deposit_cents",
    "currency",
    "discount_percent",
    "minimum_days",
    "available",
    "featured",
    "hidden",
)


@dataclass(frozen=True)
class CarCursor:
    """Position after the last car of a page, in listing order (featured first, then slug)."""

    featured: bool
    slug: str
    id: UUID


def _car(row: Row[Any], fees: Sequence[Fee]) -> Car:
    return Car(
        id=row.id,
        slug=row.slug,
        name=row.name,
        description=row.description,
        category=row.category,
        daily_rate_cents=row.daily_rate_cents,
        deposit_cents=row.deposit_cents,
        currency=row.currency,
        discount_percent=row.discount_percent,
        minimum_days=row.minimum_days,
        fees=tuple(fees),
        available=row.available,
        featured=row.featured,
        hidden=row.hidden,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class CarRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def _fees(self, car_ids: Sequence[UUID]) -> dict[UUID, list[Fee]]:
        found: dict[UUID, list[Fee]] = {car_id: [] for car_id in car_ids}
        if not car_ids:
            return found
        rows = await self._db.execute(
            select(car_fees.c.car_id, car_fees.c.name, car_fees.c.amount_cents, car_fees.c.optional)
            .where(car_fees.c.car_id.in_(car_ids))
            .order_by(car_fees.c.car_id, car_fees.c.position)
        )
        for row in rows:
            found[row.car_id].append(Fee(row.name, row.amount_cents, row.optional))
        return found

    async def get(self, car_id: UUID) -> Car | None:
        row = (await self._db.execute(select(cars).where(cars.c.id == car_id))).first()
        if row is None:
            return None
        return _car(row, (await self._fees([car_id]))[car_id])

    async def get_by_slug(self, slug: str) -> Car | None:
        row = (await self._db.execute(select(cars).where(cars.c.slug == slug))).first()
        if row is None:
            return None
        return _car(row, (await self._fees([row.id]))[row.id])

    async def key_of(self, car_id: UUID) -> int | None:
        """The integer key that bookings carry for the no-overlap constraint."""
        key: int | None = await self._db.scalar(select(cars.c.key).where(cars.c.id == car_id))
        return key

    async def page(
        self,
        *,
        limit: int,
        after: CarCursor | None = None,
        category: str | None = None,
        featured_only: bool = False,
        include_hidden: bool = False,
    ) -> list[Car]:
        query = select(cars)
        if not include_hidden:
            query = query.where(cars.c.hidden.is_(False))
        if category:
            query = query.where(cars.c.category == category)
        if featured_only:
            query = query.where(cars.c.featured.is_(True))
        if after is not None:
            # Keyset: featured DESC, slug ASC, id ASC.
            later_in_group = tuple_(cars.c.slug, cars.c.id) > tuple_(after.slug, after.id)
            if after.featured:
                query = query.where(
                    or_(cars.c.featured.is_(False), and_(cars.c.featured.is_(True), later_in_group))
                )
            else:
                query = query.where(cars.c.featured.is_(False), later_in_group)
        query = query.order_by(cars.c.featured.desc(), cars.c.slug, cars.c.id).limit(limit)
        rows = (await self._db.execute(query)).all()
        fees = await self._fees([row.id for row in rows])
        return [_car(row, fees[row.id]) for row in rows]

    async def add(self, draft: CarDraft, now: datetime) -> UUID:
        values = {name: getattr(draft, name) for name in WRITABLE_COLUMNS}
        car_id: UUID = await self._db.scalar(
            insert(cars).values(**values, created_at=now, updated_at=now).returning(cars.c.id)
        )
        await self._replace_fees(car_id, draft.fees)
        return car_id

    async def update(
        self, car_id: UUID, changes: Mapping[str, object], fees: Sequence[Fee] | None, now: datetime
    ) -> bool:
        """Writes `changes` (column -> value) and, when given, replaces the fees. False if no car."""
        unknown = set(changes) - set(WRITABLE_COLUMNS)
        if unknown:
            raise ValueError(f"not writable: {sorted(unknown)}")
        updated = await self._db.scalar(
            update(cars).where(cars.c.id == car_id).values(**changes, updated_at=now).returning(cars.c.id)
        )
        if updated is None:
            return False
        if fees is not None:
            await self._replace_fees(car_id, fees)
        return True

    async def _replace_fees(self, car_id: UUID, fees: Sequence[Fee]) -> None:
        await self._db.execute(delete(car_fees).where(car_fees.c.car_id == car_id))
        if fees:
            await self._db.execute(
                insert(car_fees),
                [
                    {
                        "car_id": car_id,
                        "position": position,
                        "name": fee.name,
                        "amount_cents": fee.amount_cents,
                        "optional": fee.optional,
                    }
                    for position, fee in enumerate(fees)
                ],
            )
