"""The one way a database URL becomes an async SQLAlchemy engine (psycopg 3)."""

from __future__ import annotations

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


def create_engine(database_url: str, *, pool_size: int = 10, statement_timeout_ms: int = 5000) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # A connection dropped by a database restart is replaced instead of failing a call.
        pool_pre_ping=True,
        connect_args={"options": f"-c statement_timeout={int(statement_timeout_ms)}"},
    )
