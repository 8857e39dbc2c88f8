"""Database URLs of the suite's throwaway databases (`with_database` is in services/storage/engine.py)."""

from __future__ import annotations


def admin_conninfo(url: str) -> str:
    """The libpq form psycopg wants (SQLAlchemy URLs also name the driver)."""
    return url.replace("postgresql+psycopg://", "postgresql://")
