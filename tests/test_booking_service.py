"""BookingService against real PostgreSQL: the rules of design §4, one behaviour per test."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from fleet_helpers import (
    ADMIN,
    ANON,
    NOW,
    booking_request,
    contact,
    customer,
    day,
    guest,
    make_app,
    make_car,
)
from sqlalchemy import func, select

from server.bootstrap import Application
from server.settings import Settings
from services.changes import RecordingNotifier
from services.clock import FixedClock
from services.errors import DomainError, Reason
from services.model import ActorType, BookingStatus, Contact
from services.principal import Principal, Role
from services.storage.tables import booking_events, bookings, customers

Env = tuple[Application, FixedClock, RecordingNotifier]


@pytest.fixture
async def env(migrated_settings: Settings) -> AsyncIterator[Env]:
    app, clock, notifier = await make_app(migrated_settings)
    try:
        yield app, clock, notifier
    finally:
        await app.close()


async def _reason(call) -> DomainError:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as caught:
        await call
    return caught.value


async def _audit(app: Application, booking_id: uuid.UUID) -> list[tuple[str | None, str, str, str]]:
    async with app.engine.connect() as conn:
        rows = await conn.execute(
            select(
                booking_events.c.from_status,
                booking_events.c.to_status,
                booking_events.c.actor_type,
                booking_events.c.reason,
            )
            .where(booking_events.c.booking_id == booking_id)
            .order_by(booking_events.c.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


# --- creation --------------------------------------------------------------------------


async def test_a_guest_booking_is_pending_priced_by_the_server_with_a_token(env: Env) -> None:
    app, _, notifier = env
    car = await make_car(app)
    created = await app.bookings.create(ANON, booking_request(car.id, day(10), day(14)))
    booking = created.booking
    assert booking.status is BookingStatus.PENDING
    assert booking.price.total_cents == 23760
    assert booking.hold_expires_at == NOW + timedelta(minutes=30)
    assert created.access_token
    assert len(created.access_token) >= 40
    assert created.access_token_expires_at is not None
    assert notifier.batches[-1] == frozenset({f"car-bookings:{car.id}"})
    async with app.engine.connect() as conn:
        stored = await conn.scalar(select(bookings.c.access_token_hash).where(bookings.c.id == booking.id))
    assert stored == hashlib.sha256(created.access_token.encode()).hexdigest()
    assert await _audit(app, booking.id) == [(None, "PENDING", "GUEST", "booked")]


async def test_a_customer_booking_returns_no_token(env: Env) -> None:
    app, _, _ = env
    car = await make_car(app)
    created = await app.bookings.create(customer("cust-1"), booking_request(car.id, day(10), day(11)))
    assert created.access_token is None
    assert created.booking.owner_subject == "cust-1"


async def test_a_guest_without_contact_is_refused(env: Env) -> None:
    app, _, _ = env
    car = await make_car(app)
    error = await _reason(app.bookings.create(ANON, booking_request(car.id, day(10), day(11), contact=None)))
    assert [v.field for v in error.violations] == ["contact"]


async def test_a_bad_email_names_contact_email(env: Env) -> None:
    app, _, _ = env
    car = await make_car(app)
    bad = Contact("Ada", "not-an-email", "")
    error = await _reason(app.bookings.create(ANON, booking_request(car.id, day(10), day(11), contact=bad)))
    assert [v.field for v in error.violations] == ["contact.email"]


async def test_a_returning_customer_may_omit_contact(env: Env) -> None:
    app, _, _ = env
    car = await make_car(app)
    who = customer()
    first = await app.bookings.create(who, booking_request(car.id, day(10), day(11)))
    second = await app.bookings.create(who, booking_request(car.id, day(11), day(12), contact=None))
    assert second.booking.contact == first.booking.contact
    error = await _reason(
        app.bookings.create(customer(), booking_request(car.id, day(20), day(21), contact=None))
    )
    assert [v.field for v in error.violations] == ["contact"]


async def test_customers_are_found_by_case_insensitive_email(env: Env) -> None:
    app, _, _ = env
    car = await make_car(app)
    email = f"Grace-{uuid.uuid4().hex[:6]}@Example.com"
    one = await app.bookings.create(ANON, booking_request(car.id, day(10), day(11), contact=contact(email)))
    two = await app.bookings.create(
        ANON, booking_request(car.id, day(11), day(12), contact=contact(email.upper()))
    )
    assert one.booking.customer_id == two.booking.customer_id
    async with app.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).where(func.lower(customers.c.email) == email.lower()))
    assert count == 1


async def test_a_start_before_today_in_the_business_timezone_is_refused(env: Env) -> None:
    app, clock, _ = env
    car = await make_car(app)
    error = await _reason(app.bookings.create(ANON, booking_request(car.id, day(-1), day(2))))
    assert [v.field for v in error.violations] == ["start_date"]
    # 02:00 UTC on 2 June is still 1 June in New York: a start on 1 June is today there.
    clock.set(NOW.replace(day=2, hour=2))
    created = await app.bookings.create(ANON, booking_request(car.id, day(0), day(1)))
    assert created.booking.start_date == day(0)


async def test_an_unknown_car_is_car_not_found(env: Env) -> None:
    app, _, _ = env
    error = await _reason(app.bookings.create(ANON, booking_request(uuid.uuid4(), day(1), day(2))))
    assert error.reason is Reason.CAR_NOT_FOUND


# --- no double booking -----------------------------------------------------------------


async def test_back_to_back_bookings_coexist(env: Env) -> None:
    app, _, _ = env
    car = await make_car(app)
    first = await app.bookings.create(ANON, booking_request(car.id, day(10), day(14)))
    second = await app.bookings.create(ANON, booking_request(car.id, day(14), day(16)))
    third = await app.bookings.create(ANON, booking_request(car.id, day(8), day(10)))
    assert {b.booking.status for b in (first, second, third)} == {BookingStatus.PENDING}


async def test_an_overlap_by_one_day_is_car_unavailable(env: Env) -> None:
    app, _, _ = env
    car = await make_car(app)
    await app.bookings.create(ANON, booking_request(car.id, day(10), day(14)))
    error = await _reason(app.bookings.create(ANON, booking_request(car.id, day(13), day(15))))
    assert error.reason is Reason.CAR_UNAVAILABLE
    assert error.metadata["car_id"] == str(car.id)


async def test_a_cancelled_booking_frees_its_days(env: Env) -> None:
    app, _, _ = env
    car = await make_car(app)
    first = await app.bookings.create(customer("c-free"), booking_request(car.id, day(10), day(14)))
    await app.bookings.cancel(customer("c-free"), first.booking.id, "plans changed")
    again = await app.bookings.create(ANON, booking_request(car.id, day(10), day(14)))
    assert again.booking.status is BookingStatus.PENDING


async def test_an_expired_hold_never_blocks_a_new_booking(env: Env) -> None:
    app, clock, _ = env
    car = await make_car(app)
    stale = await app.bookings.create(ANON, booking_request(car.id, day(10), day(14)))
    clock.set(NOW + timedelta(minutes=31))
    fresh = await app.bookings.create(ANON, booking_request(car.id, day(10), day(14)))
    assert fresh.booking.status is BookingStatus.PENDING
    old = await app.bookings.get(ADMIN, stale.booking.id)
    assert old.status is BookingStatus.CANCELLED
    assert (await _audit(app, stale.booking.id))[-1] == ("PENDING", "CANCELLED", "SYSTEM", "hold expired")


# --- idempotency -----------------------------------------------------------------------


async def test_repeating_a_request_id_returns_the_same_booking(env: Env) -> None:
    app, _, _ = env
    car = await make_car(app)
    request = booking_request(car.id, day(10), day(12))
    first = await app.bookings.create(ANON, request)
    again = await app.bookings.create(ANON, request)
    assert again.booking.id == first.booking.id
    assert again.replayed
    assert not first.replayed
    assert again.access_token is None
    async with app.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).where(bookings.c.request_id == request.request_id))
    assert count == 1


async def test_a_request_id_reused_with_other_content_is_refused(env: Env) -> None:
    app, _, _ = env
    car = await make_car(app)
    request = booking_request(car.id, day(10), day(12))
    await app.bookings.create(ANON, request)
    changed = booking_request(
        car.id, day(10), day(13), request_id=request.request_id, contact=request.contact
    )
    error = await _reason(app.bookings.create(ANON, changed))
    assert error.reason is Reason.REQUEST_ID_REUSED
    assert error.metadata == {"request_id": str(request.request_id)}
    error = await _reason(app.bookings.create(customer(), request))
    assert error.reason is Reason.REQUEST_ID_REUSED


# --- access ----------------------------------------------------------------------------


async def test_the_guest_token_opens_that_booking_only(env: Env) -> None:
    app, _, _ = env
    car = await make_car(app)
    mine = await app.bookings.create(ANON, booking_request(car.id, day(10), day(11)))
    other = await app.bookings.create(ANON, booking_request(car.id, day(11), day(12)))
    assert mine.access_token is not None
    read = await app.bookings.get(guest(mine.access_token), mine.booking.id)
    assert read.id == mine.booking.id
    assert [e.to_status for e in read.events] == [BookingStatus.PENDING]
    for principal in (ANON, guest("wrong-token"), guest(mine.access_token[:-1])):
        error = await _reason(app.bookings.get(principal, mine.booking.id))
        assert error.reason is Reason.PERMISSION_DENIED
    error = await _reason(app.bookings.get(guest(mine.access_token), other.booking.id))
    assert error.reason is Reason.PERMISSION_DENIED
    cancelled = await app.bookings.cancel(guest(mine.access_token), mine.booking.id)
    assert cancelled.status is BookingStatus.CANCELLED
    assert cancelled.events[-1].actor_type is ActorType.GUEST


async def test_an_expired_guest_token_is_refused(env: Env) -> None:
    app, clock, _ = env
    car = await make_car(app)
    made = await app.bookings.create(ANON, booking_request(car.id, day(1), day(2)))
    assert made.access_token
    assert made.access_token_expires_at
    clock.set(made.access_token_expires_at)
    error = await _reason(app.bookings.get(guest(made.access_token), made.booking.id))
    assert error.reason is Reason.PERMISSION_DENIED


async def test_customers_see_their_own_bookings_and_staff_see_all(env: Env) -> None:
    app, _, _ = env
    car = await make_car(app)
    alice, bob = customer(), customer()
    booked = await app.bookings.create(alice, booking_request(car.id, day(10), day(11)))
    assert (await app.bookings.get(alice, booked.booking.id)).id == booked.booking.id
    assert (await app.bookings.get(ADMIN, booked.booking.id)).id == booked.booking.id
    assert (await app.bookings.get(Principal(Role.SERVICE, "svc"), booked.booking.id)).id == booked.booking.id
    error = await _reason(app.bookings.get(bob, booked.booking.id))
    assert error.reason is Reason.PERMISSION_DENIED
    error = await _reason(app.bookings.cancel(bob, booked.booking.id))
    assert error.reason is Reason.PERMISSION_DENIED
    listed, _ = await app.bookings.list_bookings(bob)
    assert listed == []
    listed, _ = await app.bookings.list_bookings(alice)
    assert [b.id for b in listed] == [booked.booking.id]


async def test_a_missing_booking_is_not_found_for_staff_and_denied_to_others(env: Env) -> None:
    app, _, _ = env
    missing = uuid.uuid4()
    assert (await _reason(app.bookings.get(ADMIN, missing))).reason is Reason.BOOKING_NOT_FOUND
    assert (await _reason(app.bookings.get(customer(), missing))).reason is Reason.PERMISSION_DENIED


async def test_anonymous_callers_cannot_list(env: Env) -> None:
    app, _, _ = env
    assert (await _reason(app.bookings.list_bookings(ANON))).reason is Reason.UNAUTHENTICATED


# --- state machine ---------------------------------------------------------------------

LEGAL = [
    ([], BookingStatus.CONFIRMED),
    ([], BookingStatus.CANCELLED),
    ([BookingStatus.CONFIRMED], BookingStatus.ACTIVE),
    ([BookingStatus.CONFIRMED], BookingStatus.CANCELLED),
    ([BookingStatus.CONFIRMED, BookingStatus.ACTIVE], BookingStatus.COMPLETED),
]


async def _booking_in(app: Application, path: list[BookingStatus]) -> uuid.UUID:
    car = await make_car(app)
    booking_id = (await app.bookings.create(ANON, booking_request(car.id, day(10), day(12)))).booking.id
    for status in path:
        await app.bookings.transition(ADMIN, booking_id, status, "step")
    return booking_id


@pytest.mark.parametrize(("path", "target"), LEGAL)
async def test_every_legal_transition_is_applied_and_audited(
    env: Env, path: list[BookingStatus], target: BookingStatus
) -> None:
    app, _, notifier = env
    booking_id = await _booking_in(app, path)
    before = (path or [BookingStatus.PENDING])[-1]
    notifier.batches.clear()
    moved = await app.bookings.transition(ADMIN, booking_id, target, "by the book")
    assert moved.status is target
    assert moved.hold_expires_at is None
    assert (await _audit(app, booking_id))[-1] == (before.value, target.value, "ADMIN", "by the book")
    assert notifier.batches == [frozenset({f"car-bookings:{moved.car_id}"})]


ILLEGAL = [
    (path, target)
    for path, current in (
        ([], BookingStatus.PENDING),
        ([BookingStatus.CONFIRMED], BookingStatus.CONFIRMED),
        ([BookingStatus.CONFIRMED, BookingStatus.ACTIVE], BookingStatus.ACTIVE),
        ([BookingStatus.CONFIRMED, BookingStatus.ACTIVE, BookingStatus.COMPLETED], BookingStatus.COMPLETED),
        ([BookingStatus.CANCELLED], BookingStatus.CANCELLED),
    )
    for target in BookingStatus
    if target not in {t for p, t in LEGAL if (p[-1] if p else BookingStatus.PENDING) == current}
]


@pytest.mark.parametrize(("path", "target"), ILLEGAL)
async def test_every_illegal_transition_is_refused_and_changes_nothing(
    env: Env, path: list[BookingStatus], target: BookingStatus
) -> None:
    app, _, _ = env
    booking_id = await _booking_in(app, path)
    before = await _audit(app, booking_id)
    error = await _reason(app.bookings.transition(ADMIN, booking_id, target))
    assert error.reason is Reason.INVALID_STATE_TRANSITION
    assert error.metadata["to_status"] == target.value
    assert await _audit(app, booking_id) == before


async def test_only_staff_transition(env: Env) -> None:
    app, _, _ = env
    booking_id = await _booking_in(app, [])
    error = await _reason(app.bookings.transition(customer(), booking_id, BookingStatus.CONFIRMED))
    assert error.reason is Reason.PERMISSION_DENIED


async def test_confirming_after_the_hold_ran_out_expires_the_booking(env: Env) -> None:
    app, clock, _notifier = env
    booking_id = await _booking_in(app, [])
    clock.set(NOW + timedelta(minutes=30))
    error = await _reason(app.bookings.transition(ADMIN, booking_id, BookingStatus.CONFIRMED))
    assert error.reason is Reason.INVALID_STATE_TRANSITION
    assert (await app.bookings.get(ADMIN, booking_id)).status is BookingStatus.CANCELLED
    assert (await _audit(app, booking_id))[-1] == ("PENDING", "CANCELLED", "SYSTEM", "hold expired")


# --- expiry ----------------------------------------------------------------------------


async def test_expire_overdue_cancels_only_pending_bookings_past_their_hold(env: Env) -> None:
    app, clock, notifier = env
    car = await make_car(app)
    old = await app.bookings.create(ANON, booking_request(car.id, day(10), day(11)))
    confirmed = await app.bookings.create(ANON, booking_request(car.id, day(11), day(12)))
    await app.bookings.transition(ADMIN, confirmed.booking.id, BookingStatus.CONFIRMED)
    clock.set(NOW + timedelta(minutes=20))
    young = await app.bookings.create(ANON, booking_request(car.id, day(12), day(13)))
    clock.set(NOW + timedelta(minutes=30))
    notifier.batches.clear()
    assert await app.bookings.expire_overdue() >= 1
    assert (await app.bookings.get(ADMIN, old.booking.id)).status is BookingStatus.CANCELLED
    assert (await app.bookings.get(ADMIN, confirmed.booking.id)).status is BookingStatus.CONFIRMED
    assert (await app.bookings.get(ADMIN, young.booking.id)).status is BookingStatus.PENDING
    assert f"car-bookings:{car.id}" in notifier.tags
    assert (await _audit(app, old.booking.id))[-1] == ("PENDING", "CANCELLED", "SYSTEM", "hold expired")


# --- listing ---------------------------------------------------------------------------


async def test_pages_have_no_gaps_or_repeats_while_bookings_are_added(env: Env) -> None:
    app, clock, _ = env
    car = await make_car(app)
    who = customer()
    made = []
    for offset in range(9):
        clock.set(NOW + timedelta(seconds=offset))
        made.append(
            (await app.bookings.create(who, booking_request(car.id, day(offset), day(offset + 1)))).booking.id
        )
    seen: list[uuid.UUID] = []
    token = ""
    extra = 20
    while True:
        page, token = await app.bookings.list_bookings(who, page_size=4, page_token=token)
        seen.extend(b.id for b in page)
        # A newer booking lands between pages.
        clock.set(NOW + timedelta(seconds=extra))
        await app.bookings.create(who, booking_request(car.id, day(extra), day(extra + 1)))
        extra += 1
        if not token:
            break
    assert len(seen) == len(set(seen))
    assert seen == list(reversed(made))


async def test_list_filters_by_status_and_car(env: Env) -> None:
    app, _, _ = env
    car, other = await make_car(app), await make_car(app)
    a = await app.bookings.create(ANON, booking_request(car.id, day(1), day(2)))
    await app.bookings.create(ANON, booking_request(other.id, day(1), day(2)))
    await app.bookings.transition(ADMIN, a.booking.id, BookingStatus.CONFIRMED)
    listed, _ = await app.bookings.list_bookings(ADMIN, car_id=car.id, status=BookingStatus.CONFIRMED)
    assert [b.id for b in listed] == [a.booking.id]
    listed, _ = await app.bookings.list_bookings(ADMIN, car_id=car.id, status=BookingStatus.PENDING)
    assert listed == []
