"""One database transaction per use case, with the repositories that work inside it.

It rolls back unless `commit()` was called. At the start of the transaction it switches to the
application's database role (row level security applies only to non-superusers) and publishes
the caller as transaction-local settings that the policies read (migration 0003):
`exodrive.role`, `exodrive.subject` and `exodrive.booking_token_hash`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from types import TracebackType
from typing import Self

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from services.principal import Principal
from services.storage.bookings import BookingRepository
from services.storage.cars import CarRepository
from services.storage.customers import CustomerRepository


class UnitOfWork:
    cars: CarRepository
    bookings: BookingRepository
    customers: CustomerRepository

    def __init__(self, engine: AsyncEngine, principal: Principal, *, session_role: str | None = None) -> None:
        self._engine = engine
        self._principal = principal
        # When set, the transaction runs as this database role (SET LOCAL ROLE), e.g. the
        # non-superuser application role that row level security applies to.
        self._session_role = session_role
        self._connection: AsyncConnection | None = None
        self._transaction: AsyncTransaction | None = None
        self._committed = False

    @property
    def connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._connection

    async def __aenter__(self) -> Self:
        self._connection = await self._engine.connect()
        try:
            self._transaction = await self._connection.begin()
            if self._session_role:
                quoted = self._connection.dialect.identifier_preparer.quote(self._session_role)
                await self._connection.execute(text(f"SET LOCAL ROLE {quoted}"))
            await self._publish(self._principal)
        except BaseException:
            await self._connection.close()
            raise
        self.cars = CarRepository(self._connection)
        self.bookings = BookingRepository(self._connection)
        self.customers = CustomerRepository(self._connection)
        return self

    async def _publish(self, principal: Principal) -> None:
        await self.connection.execute(
            select(
                text("set_config('exodrive.role', :role, true)"),
                text("set_config('exodrive.subject', :subject, true)"),
                text("set_config('exodrive.booking_token_hash', :token_hash, true)"),
            ),
            {
                "role": principal.role.value,
                "subject": principal.subject or "",
                "token_hash": principal.booking_token_hash or "",
            },
        )

    @asynccontextmanager
    async def acting_as(self, system: Principal) -> AsyncIterator[None]:
        """Runs the statements of the block as `system`, then as the caller again.

        For the few steps of a caller's transaction that must reach rows of other owners (see
        services/system_callers.py); everything else in the transaction stays the caller's.
        """
        await self._publish(system)
        try:
            yield
        except BaseException:
            # A failed statement aborts the transaction, which then runs nothing more anyway.
            with suppress(DBAPIError):
                await self._publish(self._principal)
            raise
        await self._publish(self._principal)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if self._transaction is not None and self._transaction.is_active and not self._committed:
                await self._transaction.rollback()
        finally:
            await connection.close()

    async def commit(self) -> None:
        if self._transaction is None:
            raise RuntimeError("unit of work used outside `async with`")
        await self._transaction.commit()
        self._committed = True

    async def rollback(self) -> None:
        if self._transaction is not None and self._transaction.is_active:
            await self._transaction.rollback()


UnitOfWorkFactory = Callable[[Principal], UnitOfWork]


def unit_of_work_factory(engine: AsyncEngine, *, session_role: str | None = None) -> UnitOfWorkFactory:
    def make(principal: Principal) -> UnitOfWork:
        return UnitOfWork(engine, principal, session_role=session_role)

    return make
