"""Migrations: up, down to base and up again on an empty database; models equal migrations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from database_urls import admin_conninfo
from psycopg import sql
from raw_rows import insert_booking, insert_car_and_customer
from sqlalchemy import create_engine, inspect, pool

from server import schema
from server.settings import Settings
from services.storage.all_tables import metadata
from services.storage.engine import sqlalchemy_url, with_database

MY_TABLES = {"cars", "car_fees", "customers", "bookings", "booking_events"}


@pytest.fixture
def empty_database(settings: Settings) -> Iterator[str]:
    """A brand-new database beside the session's, dropped afterwards."""
    assert settings.database_url is not None
    admin = admin_conninfo(settings.database_url)
    name = f"exodrive_migrations_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _tables(url: str) -> set[str]:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_up_down_to_base_and_up_again(empty_database: str) -> None:
    assert schema.current(empty_database) is None
    schema.upgrade(empty_database)
    assert schema.current(empty_database) == schema.head()
    assert _tables(empty_database) >= MY_TABLES
    schema.downgrade(empty_database, "base")
    assert schema.current(empty_database) is None
    assert _tables(empty_database) == set()
    schema.upgrade(empty_database)
    assert schema.current(empty_database) == schema.head()
    assert _tables(empty_database) == set(metadata.tables)


def test_models_match_migrations(migrated_settings: Settings) -> None:
    assert migrated_settings.database_url is not None
    engine = create_engine(sqlalchemy_url(migrated_settings.database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_the_application_role_has_rights_on_the_tables(migrated_settings: Settings) -> None:
    assert migrated_settings.database_url is not None
    with psycopg.connect(migrated_settings.database_url) as conn:
        for table in sorted(MY_TABLES):
            granted = conn.execute(
                "SELECT has_table_privilege('exodrive_app', %s, 'SELECT, INSERT, UPDATE, DELETE')", (table,)
            ).fetchone()
            assert granted == (True,), table


def test_the_database_refuses_overlaps_and_bad_statuses(migrated_settings: Settings) -> None:
    """The constraints hold even for writes that bypass the services."""
    assert migrated_settings.database_url is not None
    with psycopg.connect(migrated_settings.database_url) as conn:
        car = insert_car_and_customer(conn)
        conn.commit()

        def insert(start: str, end: str, status: str, car_key: int | None = None) -> None:
            insert_booking(conn, car, start, end, status, car_key=car_key)

        insert("2031-01-10", "2031-01-12", "CONFIRMED")
        insert("2031-01-12", "2031-01-13", "PENDING")  # back to back: allowed
        insert("2031-01-11", "2031-01-12", "CANCELLED")  # released days: allowed
        conn.commit()
        with pytest.raises(psycopg.errors.ExclusionViolation):
            insert("2031-01-11", "2031-01-12", "PENDING")
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            insert("2031-02-01", "2031-02-02", "LOST")
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            insert("2031-02-02", "2031-02-02", "PENDING")
        conn.rollback()
        # A booking's car_key must be its own car's key.
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            insert("2031-03-01", "2031-03-02", "PENDING", car_key=car.key + 1_000_000)
