"""Which database failures mean "PostgreSQL cannot be reached" (UNAVAILABLE: retrying helps), as
opposed to a statement's own failure, which stays an unexpected error (INTERNAL).

The unit of work applies this at the storage boundary, so every use case answers a refused, lost
or hung connection the same way and no driver text reaches a caller.
"""

from __future__ import annotations

import psycopg
from sqlalchemy import exc as sa_exc

from services.errors import DomainError, Reason

RETRY_AFTER_SECONDS = 1.0
# Server states that end or refuse sessions: admin/crash shutdown, starting up, too many clients.
_UNREACHABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def is_connection_failure(error: BaseException) -> bool:
    # The pool had no connection to give in time, or the unit of work's own bound ran out.
    if isinstance(error, sa_exc.TimeoutError | TimeoutError):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        cause: BaseException | None = error.orig
    else:
        cause = error
    if isinstance(cause, psycopg.OperationalError):
        # No SQLSTATE: the client failed (refused, timed out, closed); class 08: connection exception.
        state = cause.sqlstate
        return state is None or state.startswith("08") or state in _UNREACHABLE_SQLSTATES
    # psycopg's InterfaceError: the connection is already closed.
    return isinstance(cause, psycopg.InterfaceError)


def database_unavailable() -> DomainError:
    return DomainError(
        Reason.UNAVAILABLE,
        "the database is unavailable; retry shortly",
        metadata={"dependency": "database"},
        retry_after_seconds=RETRY_AFTER_SECONDS,
    )
