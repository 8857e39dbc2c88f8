"""The one way a database URL becomes an async SQLAlchemy engine (psycopg 3)."""

from __future__ import annotations

import math

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def sqlalchemy_url(database_url: str) -> str:
    """`postgresql://...` (libpq form, as DATABASE_URL is usually given) -> `postgresql+psycopg://...`."""
    url = make_url(database_url)
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        url = url.set(drivername="postgresql+psycopg")
    else:
        raise ValueError(f"unsupported database driver {url.drivername!r}")
    return url.render_as_string(hide_password=False)


def with_database(database_url: str, name: str) -> str:
    """`database_url` naming database `name` instead, its query string kept verbatim: the embedded
    server is reached through `?host=<socket folder>`, which must survive."""
    base, separator, query = database_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}{separator}{query}"


def create_engine(
    database_url: str,
    *,
    pool_size: int = 10,
    statement_timeout_ms: int = 5000,
    connect_timeout_seconds: float = 3.0,
    pool_timeout_seconds: float = 3.0,
) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # A connection dropped by a database restart is replaced instead of failing a call.
        pool_pre_ping=True,
        # A call waits this long for a free pooled connection, then fails UNAVAILABLE.
        pool_timeout=pool_timeout_seconds,
        connect_args={
            "options": f"-c statement_timeout={int(statement_timeout_ms)}",
            # libpq counts whole seconds: a server that does not answer its start-up fails here.
            "connect_timeout": max(1, math.ceil(connect_timeout_seconds)),
        },
    )
