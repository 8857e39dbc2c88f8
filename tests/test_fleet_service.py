"""FleetService against real PostgreSQL: catalogue, availability, quotes, admin writes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from fleet_helpers import ADMIN, ANON, NOW, booking_request, car_draft, customer, day, make_app, make_car

from server.bootstrap import Application
from server.settings import Settings
from services.changes import RecordingNotifier
from services.clock import FixedClock
from services.errors import DomainError, Reason
from services.pricing import Fee


@pytest.fixture
async def env(
    migrated_settings: Settings,
) -> AsyncIterator[tuple[Application, FixedClock, RecordingNotifier]]:
    app, clock, notifier = await make_app(migrated_settings)
    try:
        yield app, clock, notifier
    finally:
        await app.close()


async def test_created_car_reads_back_with_its_fees_in_order(env) -> None:  # type: ignore[no-untyped-def]
    app, _, notifier = env
    car = await make_car(app, name="Ferrari 296 GTB")
    read = await app.fleet.get_car(ANON, car.id)
    assert read.name == "Ferrari 296 GTB"
    assert [(f.name, f.amount_cents, f.optional) for f in read.fees] == [
        ("Cleaning", 2500, False),
        ("Delivery", 1500, False),
        ("Child seat", 900, True),
    ]
    assert read.created_at == NOW
    assert {"fleet", f"car:{car.id}"} <= notifier.tags


async def test_unknown_car_is_car_not_found(env) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = env
    missing = uuid.uuid4()
    with pytest.raises(DomainError) as caught:
        await app.fleet.get_car(ANON, missing)
    assert caught.value.reason is Reason.CAR_NOT_FOUND
    assert caught.value.metadata == {"car_id": str(missing)}


async def test_only_staff_create_and_update_cars(env) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = env
    with pytest.raises(DomainError) as caught:
        await app.fleet.create_car(customer(), car_draft())
    assert caught.value.reason is Reason.PERMISSION_DENIED
    car = await make_car(app)
    with pytest.raises(DomainError) as caught:
        await app.fleet.update_car(ANON, car.id, {"name": "x"})
    assert caught.value.reason is Reason.PERMISSION_DENIED


async def test_invalid_car_fields_are_named(env) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = env
    draft = car_draft(slug="Not A Slug", daily_rate_cents=0, discount_percent=101, fees=(Fee("", -1),))
    with pytest.raises(DomainError) as caught:
        await app.fleet.create_car(ADMIN, draft)
    fields = {v.field for v in caught.value.violations}
    assert fields == {
        "car.slug",
        "car.daily_rate.amount_minor",
        "car.discount_percent",
        "car.fees[0].name",
        "car.fees[0].amount.amount_minor",
    }


async def test_a_taken_slug_is_a_validation_error(env) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = env
    car = await make_car(app)
    with pytest.raises(DomainError) as caught:
        await app.fleet.create_car(ADMIN, car_draft(slug=car.slug))
    assert [v.field for v in caught.value.violations] == ["car.slug"]


async def test_update_writes_only_the_named_fields_and_invalidates(env) -> None:  # type: ignore[no-untyped-def]
    app, _clock, notifier = env
    car = await make_car(app)
    notifier.batches.clear()
    updated = await app.fleet.update_car(ADMIN, car.id, {"daily_rate_cents": 7000, "fees": ()})
    assert updated.daily_rate_cents == 7000
    assert updated.fees == ()
    assert updated.name == car.name
    assert notifier.batches == [frozenset({"fleet", f"car:{car.id}"})]
    with pytest.raises(DomainError) as caught:
        await app.fleet.update_car(ADMIN, car.id, {"minimum_days": 0})
    assert [v.field for v in caught.value.violations] == ["car.minimum_days"]
    with pytest.raises(DomainError) as caught:
        await app.fleet.update_car(ADMIN, uuid.uuid4(), {"name": "x"})
    assert caught.value.reason is Reason.CAR_NOT_FOUND


async def test_listing_pages_through_every_visible_car_once(env) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = env
    category = f"cat-{uuid.uuid4().hex[:8]}"
    made = [await make_car(app, category=category, featured=i % 3 == 0) for i in range(7)]
    await make_car(app, category=category, hidden=True)
    seen: list[uuid.UUID] = []
    token = ""
    pages = 0
    while True:
        cars, token = await app.fleet.list_cars(ANON, page_size=3, page_token=token, category=category)
        seen.extend(car.id for car in cars)
        pages += 1
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == sorted(car.id for car in made)
    listed, _ = await app.fleet.list_cars(ANON, page_size=10, category=category)
    assert [car.featured for car in listed] == [True] * 3 + [False] * 4


async def test_a_page_token_from_other_filters_or_garbage_is_refused(env) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = env
    category = f"cat-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        await make_car(app, category=category)
    _, token = await app.fleet.list_cars(ANON, page_size=1, category=category)
    assert token
    for bad in (token + "x", "%%%", "e30"):
        with pytest.raises(DomainError) as caught:
            await app.fleet.list_cars(ANON, page_size=1, page_token=bad, category=category)
        assert [v.field for v in caught.value.violations] == ["page_token"]
    with pytest.raises(DomainError) as caught:
        await app.fleet.list_cars(ANON, page_size=1, page_token=token, category="other")
    assert [v.field for v in caught.value.violations] == ["page_token"]
    for size in (-1, 101):
        with pytest.raises(DomainError) as caught:
            await app.fleet.list_cars(ANON, page_size=size)
        assert [v.field for v in caught.value.violations] == ["page_size"]


async def test_quote_is_the_worked_example(env) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = env
    car = await make_car(app)
    price = await app.fleet.quote(ANON, car.id, day(10), day(14))
    assert (price.days, price.total_cents, price.tax_cents, price.deposit_cents) == (4, 23760, 2160, 100000)


async def test_quote_below_the_car_minimum_names_end_date(env) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = env
    car = await make_car(app, minimum_days=3)
    with pytest.raises(DomainError) as caught:
        await app.fleet.quote(ANON, car.id, day(10), day(12))
    assert [v.field for v in caught.value.violations] == ["end_date"]


async def test_availability_lists_held_days_half_open(env) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = env
    car = await make_car(app)
    await app.bookings.create(customer(), booking_request(car.id, day(10), day(12)))
    availability = await app.fleet.availability(ANON, car.id, day(9), day(13))
    assert availability.unavailable_dates == (day(10), day(11))
    assert not availability.available
    free = await app.fleet.availability(ANON, car.id, day(12), day(20))
    assert free.available
    assert free.unavailable_dates == ()


async def test_an_out_of_service_car_is_unavailable_every_day(env) -> None:  # type: ignore[no-untyped-def]
    app, _, _ = env
    car = await make_car(app, available=False)
    availability = await app.fleet.availability(ANON, car.id, day(1), day(4))
    assert availability.unavailable_dates == (day(1), day(2), day(3))
    with pytest.raises(DomainError) as caught:
        await app.bookings.create(customer(), booking_request(car.id, day(1), day(4)))
    assert caught.value.reason is Reason.CAR_UNAVAILABLE
