"""One database transaction per use case, with the repositories that work inside it.

It rolls back unless `commit()` was called. At the start of the transaction it switches to the
application's database role (row level security applies only to non-superusers) and publishes
the caller as transaction-local settings that the policies read (migration 0003):
`exodrive.role`, `exodrive.subject` and `exodrive.booking_token_hash`.

A database that cannot be reached (refused, lost, or hung past `acquire_timeout` while a
connection is taken) surfaces as UNAVAILABLE with a retry hint (services/storage/failures.py),
never as the driver's error.
"""

from __future__ import annotations

import asyncio
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
from services.storage.failures import database_unavailable, is_connection_failure


class UnitOfWork:
    cars: CarRepository
    bookings: BookingRepository
    customers: CustomerRepository

    def __init__(
        self,
        engine: AsyncEngine,
        principal: Principal,
        *,
        session_role: str | None = None,
        acquire_timeout: float | None = None,
        abandoned: set[Opening] | None = None,
    ) -> None:
        self._engine = engine
        # Connection attempts given up on and still ending (shared by a factory's units of work).
        self._abandoned: set[Opening] = set() if abandoned is None else abandoned
        self._principal = principal
        # Bounds taking a connection and opening the transaction: a hung server (its pooled
        # connections' pre-ping, a new connection's start-up) fails in bounded time.
        self._acquire_timeout = acquire_timeout
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
        opening = asyncio.create_task(self._open())
        try:
            # Waited on, not cancelled in place: a cancelled psycopg call first tries to cancel
            # its query on the server, which a hung server never answers (up to 10 s more).
            done, _ = await asyncio.wait({opening}, timeout=self._acquire_timeout)
        except BaseException:
            _abandon(opening, self._abandoned)
            raise
        if not done:
            _abandon(opening, self._abandoned)
            raise database_unavailable()
        try:
            self._connection, self._transaction = opening.result()
        except Exception as exc:
            if is_connection_failure(exc):
                raise database_unavailable() from exc
            raise
        connection = self.connection
        self.cars = CarRepository(connection)
        self.bookings = BookingRepository(connection)
        self.customers = CustomerRepository(connection)
        return self

    async def _open(self) -> tuple[AsyncConnection, AsyncTransaction]:
        connection = await self._engine.connect()
        try:
            transaction = await connection.begin()
            if self._session_role:
                quoted = connection.dialect.identifier_preparer.quote(self._session_role)
                await connection.execute(text(f"SET LOCAL ROLE {quoted}"))
            await _publish(connection, self._principal)
        except BaseException as exc:
            await _discard(connection, exc)
            raise
        return connection, transaction

    async def _publish(self, principal: Principal) -> None:
        await _publish(self.connection, principal)

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
        if exc is not None and is_connection_failure(exc):
            await _discard(connection, exc)
            raise database_unavailable() from exc
        try:
            if self._transaction is not None and self._transaction.is_active and not self._committed:
                await self._transaction.rollback()
        except DBAPIError as failure:
            if not is_connection_failure(failure):
                raise
            with suppress(Exception):
                await connection.invalidate()
            if exc is None:
                raise database_unavailable() from failure
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


async def _publish(connection: AsyncConnection, principal: Principal) -> None:
    await connection.execute(
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


async def _discard(connection: AsyncConnection, failure: BaseException) -> None:
    """Gives a connection up after `failure`: a broken one is invalidated (closing it politely
    would wait on the server that failed), a sound one goes back to the pool."""
    if is_connection_failure(failure) or isinstance(failure, asyncio.CancelledError):
        with suppress(Exception):
            await connection.invalidate()
    with suppress(Exception):
        await connection.close()


Opening = asyncio.Task[tuple[AsyncConnection, AsyncTransaction]]


def _abandon(opening: Opening, abandoned: set[Opening]) -> None:
    """Stops waiting for a connection: the attempt is cancelled and ends in the background (its
    cleanup may wait on the server a while), referenced from `abandoned` until then."""
    abandoned.add(opening)

    def settle(done: Opening) -> None:
        abandoned.discard(done)
        if not done.cancelled() and done.exception() is None:
            # Finished just as it was given up: the connection goes back to the pool.
            connection, _ = done.result()
            closing = asyncio.ensure_future(connection.close())
            closing.add_done_callback(lambda _: None)

    opening.cancel()
    opening.add_done_callback(settle)


UnitOfWorkFactory = Callable[[Principal], UnitOfWork]


def unit_of_work_factory(
    engine: AsyncEngine, *, session_role: str | None = None, acquire_timeout: float | None = None
) -> UnitOfWorkFactory:
    abandoned: set[Opening] = set()

    def make(principal: Principal) -> UnitOfWork:
        return UnitOfWork(
            engine, principal, session_role=session_role, acquire_timeout=acquire_timeout, abandoned=abandoned
        )

    return make
