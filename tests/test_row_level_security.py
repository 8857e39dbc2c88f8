"""Row level security on bookings, customers and booking events, tested as the non-superuser
application role `exodrive_app` (the `postgres` superuser bypasses RLS, even with FORCE)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import psycopg
import pytest
from database_urls import admin_conninfo
from fleet_helpers import ANON, booking_request, contact, customer, day, make_app, make_car

from server.settings import Settings
from services.principal import hash_token


@dataclass
class World:
    url: str
    alice: UUID
    bob: UUID
    guest: UUID
    guest_token_hash: str
    all_bookings: set[UUID]


@pytest.fixture(scope="module")
async def world(migrated_settings: Settings) -> World:
    app, _clock, _notifier = await make_app(migrated_settings)
    try:
        car = await make_car(app)
        alice = await app.bookings.create(customer("rls-alice"), booking_request(car.id, day(40), day(41)))
        bob = await app.bookings.create(customer("rls-bob"), booking_request(car.id, day(42), day(43)))
        guest = await app.bookings.create(ANON, booking_request(car.id, day(44), day(45), contact=contact()))
    finally:
        await app.close()
    assert guest.access_token is not None
    url = admin_conninfo(migrated_settings.database_url or "")
    with psycopg.connect(url) as conn:
        every = {row[0] for row in conn.execute("SELECT id FROM bookings")}
    return World(
        url, alice.booking.id, bob.booking.id, guest.booking.id, hash_token(guest.access_token), every
    )


@pytest.fixture
def as_app(world: World) -> Iterator[psycopg.Connection]:
    with psycopg.connect(world.url) as conn:
        yield conn
        conn.rollback()


def become(conn: psycopg.Connection, role: str | None, subject: str = "", token_hash: str = "") -> None:
    """What the unit of work does at the start of each transaction."""
    conn.rollback()
    conn.execute("SET LOCAL ROLE exodrive_app")
    if role is not None:
        conn.execute(
            "SELECT set_config('exodrive.role', %s, true), set_config('exodrive.subject', %s, true), "
            "set_config('exodrive.booking_token_hash', %s, true)",
            (role, subject, token_hash),
        )


def visible(conn: psycopg.Connection, table: str = "bookings", column: str = "id") -> set[object]:
    return {row[0] for row in conn.execute(f"SELECT {column} FROM {table}")}


def test_the_application_role_is_subject_to_rls(as_app: psycopg.Connection) -> None:
    superuser, bypass = as_app.execute(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'exodrive_app'"
    ).fetchone() or (None, None)
    assert (superuser, bypass) == (False, False)
    forced = as_app.execute(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE relname IN ('bookings', 'customers', 'booking_events') ORDER BY relname"
    ).fetchall()
    assert forced == [("booking_events", True, True), ("bookings", True, True), ("customers", True, True)]


@pytest.mark.parametrize("role", ["admin", "service"])
def test_staff_see_every_booking(as_app: psycopg.Connection, world: World, role: str) -> None:
    become(as_app, role, "staff-1")
    assert visible(as_app) == world.all_bookings


def test_a_customer_sees_only_own_rows(as_app: psycopg.Connection, world: World) -> None:
    become(as_app, "customer", "rls-alice")
    assert visible(as_app) == {world.alice}
    assert visible(as_app, "customers", "subject") == {"rls-alice"}
    assert visible(as_app, "booking_events", "booking_id") == {world.alice}
    become(as_app, "customer", "rls-bob")
    assert visible(as_app) == {world.bob}


def test_a_customer_cannot_change_or_claim_others_rows(as_app: psycopg.Connection, world: World) -> None:
    become(as_app, "customer", "rls-alice")
    updated = as_app.execute("UPDATE bookings SET notes = 'x' WHERE id = %s", (world.bob,)).rowcount
    assert updated == 0
    deleted = as_app.execute("DELETE FROM booking_events WHERE booking_id = %s", (world.bob,)).rowcount
    assert deleted == 0
    # Moving her own booking to Bob fails the WITH CHECK.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_app.execute("UPDATE bookings SET owner_subject = 'rls-bob' WHERE id = %s", (world.alice,))


def test_a_guest_reaches_only_the_booking_of_its_token(as_app: psycopg.Connection, world: World) -> None:
    become(as_app, "anonymous", "", world.guest_token_hash)
    assert visible(as_app) == {world.guest}
    assert visible(as_app, "booking_events", "booking_id") == {world.guest}
    assert visible(as_app, "customers") == set()
    become(as_app, "anonymous", "", "0" * 64)
    assert visible(as_app) == set()


@pytest.mark.parametrize(("role", "subject"), [("anonymous", ""), ("customer", ""), (None, "")])
def test_no_identity_sees_nothing(as_app: psycopg.Connection, role: str | None, subject: str) -> None:
    become(as_app, role, subject)
    assert visible(as_app) == set()
    assert visible(as_app, "customers") == set()
    assert visible(as_app, "booking_events", "booking_id") == set()


def test_the_superuser_would_bypass_it(as_app: psycopg.Connection, world: World) -> None:
    """Why the application must not run as `postgres`: the same settings show every row."""
    as_app.rollback()
    as_app.execute(
        "SELECT set_config('exodrive.role', 'customer', true), set_config('exodrive.subject', 'x', true)"
    )
    assert visible(as_app) == world.all_bookings
