"""Database URLs of the suite's throwaway databases."""

from __future__ import annotations


def admin_conninfo(url: str) -> str:
    """The libpq form psycopg wants (SQLAlchemy URLs also name the driver)."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def with_database(url: str, name: str) -> str:
    """`url` naming database `name` instead, its query string kept verbatim: the embedded
    server is reached through `?host=<socket folder>`, which must survive."""
    base, separator, query = url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}{separator}{query}"
