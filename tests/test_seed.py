"""The demo fleet seeds once, whatever the number of runs."""

from __future__ import annotations

from fleet_helpers import ANON, make_app
from sqlalchemy import func, select

from server.settings import Settings
from services.seed import DEMO_FLEET, seed_demo_fleet
from services.storage.tables import cars


async def test_seeding_twice_adds_the_fleet_once(migrated_settings: Settings) -> None:
    assert migrated_settings.database_url is not None
    first = await seed_demo_fleet(migrated_settings.database_url)
    second = await seed_demo_fleet(migrated_settings.database_url)
    assert len(DEMO_FLEET) >= 8
    assert first in (0, len(DEMO_FLEET))
    assert second == 0
    app, _, _ = await make_app(migrated_settings)
    try:
        slugs = [draft.slug for draft in DEMO_FLEET]
        async with app.engine.connect() as conn:
            count = await conn.scalar(select(func.count()).where(cars.c.slug.in_(slugs)))
        assert count == len(DEMO_FLEET)
        listed, _ = await app.fleet.list_cars(ANON, page_size=100, category="supercar")
        ferrari = next(car for car in listed if car.slug == "ferrari-296-gtb")
        assert ferrari.daily_rate_cents == 189_900
        assert ferrari.featured
        assert [fee.name for fee in ferrari.fees if not fee.optional] == ["Delivery and pick-up", "Detailing"]
    finally:
        await app.close()
