"""Row level security in force at run time: the application's own units of work run as the
non-superuser role `exodrive_app`, so the database refuses what the service layer would refuse,
even when a repository is called directly, with no service check in between."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import pytest
from fleet_helpers import ADMIN, ANON, NOW, booking_request, contact, customer, day, guest, make_app, make_car
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from server.bootstrap import Application, build_application
from server.settings import Settings
from services import system_callers
from services.errors import DomainError, Reason
from services.model import ActorType, BookingStatus
from services.principal import Principal
from services.storage.tables import booking_events, bookings, customers
from services.storage.unit_of_work import UnitOfWork

ALICE = customer("rls-runtime-alice")
BOB = customer("rls-runtime-bob")


@dataclass
class World:
    app: Application
    car_id: UUID
    alice: UUID
    alice_email: str
    bob: UUID
    bob_request: UUID
    bob_email: str
    guest: UUID
    guest_token: str


@pytest.fixture(scope="module")
async def world(migrated_settings: Settings) -> AsyncIterator[World]:
    app, _clock, _notifier = await make_app(migrated_settings)
    try:
        car = await make_car(app)
        alice_contact, bob_contact = contact(), contact()
        alice = await app.bookings.create(
            ALICE, booking_request(car.id, day(5), day(6), contact=alice_contact)
        )
        bob_request = booking_request(car.id, day(6), day(7), contact=bob_contact)
        bob = await app.bookings.create(BOB, bob_request)
        visitor = await app.bookings.create(ANON, booking_request(car.id, day(7), day(8)))
        assert visitor.access_token is not None
        yield World(
            app,
            car.id,
            alice.booking.id,
            alice_contact.email,
            bob.booking.id,
            bob_request.request_id,
            bob_contact.email,
            visitor.booking.id,
            visitor.access_token,
        )
    finally:
        await app.close()


async def _count(uow: UnitOfWork, table: object) -> int:
    return int(await uow.connection.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


async def test_every_transaction_runs_as_the_application_role(world: World) -> None:
    for principal in (ANON, ALICE, ADMIN):
        async with world.app.uow(principal) as uow:
            role = await uow.connection.scalar(text("SELECT current_user"))
            superuser = await uow.connection.scalar(text("SELECT current_setting('is_superuser')"))
            assert (role, superuser) == ("exodrive_app", "off")
    inbox_uow = world.app.inbox._uow  # the inbox and webhook units of work switch role too
    async with inbox_uow(ADMIN) as uow:
        assert await uow.connection.scalar(text("SELECT current_user")) == "exodrive_app"


async def test_an_operator_may_choose_another_role_or_none(migrated_settings: Settings) -> None:
    app = await build_application(migrated_settings.model_copy(update={"db_session_role": ""}))
    try:
        async with app.uow(ANON) as uow:
            current, session = (await uow.connection.execute(text("SELECT current_user, session_user"))).one()
        # No switch: the transaction runs as the login role itself.
        assert current == session
    finally:
        await app.close()


async def test_a_customer_cannot_read_another_customers_rows_through_the_repository(world: World) -> None:
    async with world.app.uow(ALICE) as uow:
        assert await uow.bookings.get(world.bob) is None
        assert await uow.bookings.by_request_id(world.bob_request) is None
        assert await uow.bookings.events(world.bob) == ()
        assert {b.id for b in await uow.bookings.page(limit=100)} == {world.alice}
        assert await uow.customers.by_email(world.bob_email) is None
        assert await uow.customers.latest_contact_of_subject(BOB.subject or "") is None
        # Her own rows stay visible: the policies are not simply closed.
        own = await uow.bookings.get(world.alice)
        assert own is not None
        assert own.booking.owner_subject == ALICE.subject
        assert await uow.customers.by_email(world.alice_email) is not None


async def test_a_customer_cannot_change_another_customers_booking(world: World) -> None:
    async with world.app.uow(ALICE) as uow:
        await uow.bookings.set_status(world.bob, BookingStatus.CANCELLED, NOW)
        await uow.commit()
    async with world.app.uow(ALICE) as uow:
        # Even a sweep that matches every pending hold of the car reaches only her own row
        # (rolled back: the unit of work is left without commit).
        swept = await uow.bookings.expire_holds(NOW + timedelta(days=365), car_id=world.car_id)
        assert [hold.booking_id for hold in swept] == [world.alice]
    async with world.app.uow(ADMIN) as uow:
        statuses = {b.id: b.status for b in await uow.bookings.page(limit=100, car_id=world.car_id)}
    assert statuses[world.bob] is BookingStatus.PENDING
    assert statuses[world.alice] is BookingStatus.PENDING


async def test_a_customer_cannot_write_into_another_customers_audit_trail(world: World) -> None:
    async with world.app.uow(ALICE) as uow:
        with pytest.raises(DBAPIError) as caught:
            await uow.bookings.add_event(
                world.bob,
                occurred_at=NOW,
                actor_type=ActorType.CUSTOMER,
                actor_id=ALICE.subject or "",
                from_status=BookingStatus.PENDING,
                to_status=BookingStatus.CANCELLED,
                reason="forged",
            )
    assert getattr(caught.value.orig, "sqlstate", None) == "42501"  # insufficient_privilege
    async with world.app.uow(ADMIN) as uow:
        assert [event.reason for event in await uow.bookings.events(world.bob)] == ["booked"]


async def test_an_anonymous_unit_of_work_sees_no_bookings_or_customers(world: World) -> None:
    async with world.app.uow(ANON) as uow:
        assert await _count(uow, bookings) == 0
        assert await _count(uow, customers) == 0
        assert await _count(uow, booking_events) == 0
        assert await uow.bookings.get(world.guest) is None
        assert await uow.customers.by_email(world.alice_email) is None
        await uow.bookings.set_status(world.guest, BookingStatus.CANCELLED, NOW)
        await uow.commit()
    async with world.app.uow(ADMIN) as uow:
        stored = await uow.bookings.get(world.guest)
        assert stored is not None
        assert stored.booking.status is BookingStatus.PENDING


async def test_a_guest_token_opens_its_own_booking_and_nothing_else(world: World) -> None:
    async with world.app.uow(guest(world.guest_token)) as uow:
        assert {b.id for b in await uow.bookings.page(limit=100)} == {world.guest}
        assert await uow.bookings.get(world.alice) is None
        assert await _count(uow, customers) == 0
    async with world.app.uow(guest("not-the-token")) as uow:
        assert await _count(uow, bookings) == 0


async def test_staff_see_every_row(world: World) -> None:
    async with world.app.uow(ADMIN) as uow:
        ids = {b.id for b in await uow.bookings.page(limit=100, car_id=world.car_id)}
    assert ids == {world.alice, world.bob, world.guest}


async def test_a_system_step_inside_a_callers_transaction_ends_with_its_block(world: World) -> None:
    async with world.app.uow(ALICE) as uow:
        async with uow.acting_as(system_callers.CUSTOMER_DIRECTORY):
            assert await uow.customers.by_email(world.bob_email) is not None
        # Back to Alice: Bob's record is hidden again.
        assert await uow.customers.by_email(world.bob_email) is None
        with pytest.raises(RuntimeError):
            async with uow.acting_as(system_callers.AVAILABILITY):
                raise RuntimeError("a step failed")
        assert await uow.bookings.get(world.bob) is None


# --- the service paths that cross owners, each under its named system principal --------


async def test_availability_counts_every_owners_holds_for_any_caller(world: World) -> None:
    for caller in (ANON, ALICE, customer()):
        found = await world.app.fleet.availability(caller, world.car_id, day(5), day(9))
        assert found.unavailable_dates == (day(5), day(6), day(7))


async def test_another_callers_request_id_is_reused_not_internal(world: World) -> None:
    request = booking_request(world.car_id, day(20), day(21), request_id=world.bob_request)
    with pytest.raises(DomainError) as caught:
        await world.app.bookings.create(ALICE, request)
    assert caught.value.reason is Reason.REQUEST_ID_REUSED


async def test_a_guest_repeating_its_request_gets_its_booking_back(world: World) -> None:
    request = booking_request(world.car_id, day(30), day(31))
    first = await world.app.bookings.create(ANON, request)
    again = await world.app.bookings.create(ANON, request)
    assert (again.booking.id, again.replayed, again.access_token) == (first.booking.id, True, None)


async def test_a_customer_may_book_with_an_email_a_guest_used_first(world: World) -> None:
    shared = contact()
    as_guest = await world.app.bookings.create(
        ANON, booking_request(world.car_id, day(40), day(41), contact=shared)
    )
    carol: Principal = customer()
    as_carol = await world.app.bookings.create(
        carol, booking_request(world.car_id, day(41), day(42), contact=shared)
    )
    assert as_carol.booking.customer_id == as_guest.booking.customer_id
    assert as_carol.booking.owner_subject == carol.subject
