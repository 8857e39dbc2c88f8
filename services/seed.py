"""The demo fleet: realistic exotic cars with prices and fees, added once each (by slug)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from services.model import CarDraft
from services.pricing import Fee
from services.principal import Principal, Role
from services.storage.engine import create_engine
from services.storage.unit_of_work import UnitOfWork

_DELIVERY = Fee("Delivery and pick-up", 15000)
_DETAIL = Fee("Detailing", 7500)
_INSURANCE = Fee("Premium insurance", 25000, optional=True)
_MILES = Fee("Extra 100 miles", 20000, optional=True)

DEMO_FLEET: tuple[CarDraft, ...] = (
    CarDraft(
        slug="ferrari-296-gtb",
        name="Ferrari 296 GTB",
        description="830 hp plug-in hybrid V6 berlinetta in Rosso Corsa.",
        category="supercar",
        daily_rate_cents=189_900,
        deposit_cents=1_000_000,
        discount_percent=0,
        minimum_days=2,
        fees=(_DELIVERY, _DETAIL, _INSURANCE),
        featured=True,
    ),
    CarDraft(
        slug="lamborghini-huracan-evo",
        name="Lamborghini Huracán EVO",
        description="Naturally aspirated V10, all-wheel drive, Verde Mantis.",
        category="supercar",
        daily_rate_cents=169_900,
        deposit_cents=1_000_000,
        discount_percent=5,
        minimum_days=2,
        fees=(_DELIVERY, _DETAIL, _INSURANCE),
        featured=True,
    ),
    CarDraft(
        slug="mclaren-720s",
        name="McLaren 720S",
        description="Twin-turbo V8 with dihedral doors and a carbon tub.",
        category="supercar",
        daily_rate_cents=159_900,
        deposit_cents=1_000_000,
        discount_percent=0,
        minimum_days=2,
        fees=(_DELIVERY, _DETAIL, _MILES),
        featured=True,
    ),
    CarDraft(
        slug="porsche-911-gt3",
        name="Porsche 911 GT3",
        description="4.0-litre flat six revving to 9,000 rpm, six-speed manual.",
        category="sports",
        daily_rate_cents=99_900,
        deposit_cents=500_000,
        discount_percent=10,
        minimum_days=1,
        fees=(_DELIVERY, _DETAIL),
    ),
    CarDraft(
        slug="rolls-royce-cullinan",
        name="Rolls-Royce Cullinan",
        description="The quietest V12 SUV, for seven-star arrivals.",
        category="luxury-suv",
        daily_rate_cents=149_900,
        deposit_cents=750_000,
        discount_percent=0,
        minimum_days=1,
        fees=(_DELIVERY, _DETAIL, Fee("Chauffeur (per booking)", 60000, optional=True)),
    ),
    CarDraft(
        slug="bentley-continental-gtc",
        name="Bentley Continental GTC",
        description="W12 grand-touring convertible with a handcrafted cabin.",
        category="grand-tourer",
        daily_rate_cents=89_900,
        deposit_cents=500_000,
        discount_percent=10,
        minimum_days=1,
        fees=(_DELIVERY, _DETAIL),
    ),
    CarDraft(
        slug="mercedes-amg-g63",
        name="Mercedes-AMG G 63",
        description="Hand-built twin-turbo V8 off-roader with three locking differentials.",
        category="luxury-suv",
        daily_rate_cents=79_900,
        deposit_cents=400_000,
        discount_percent=0,
        minimum_days=1,
        fees=(_DELIVERY, _DETAIL, _INSURANCE),
    ),
    CarDraft(
        slug="aston-martin-dbs",
        name="Aston Martin DBS Superleggera",
        description="715 hp V12 grand tourer with a carbon-fibre body.",
        category="grand-tourer",
        daily_rate_cents=119_900,
        deposit_cents=750_000,
        discount_percent=5,
        minimum_days=2,
        fees=(_DELIVERY, _DETAIL),
    ),
    CarDraft(
        slug="audi-r8-v10-spyder",
        name="Audi R8 V10 Spyder",
        description="Open-top mid-engine V10 with quattro grip.",
        category="sports",
        daily_rate_cents=89_900,
        deposit_cents=500_000,
        discount_percent=0,
        minimum_days=1,
        fees=(_DELIVERY, _DETAIL, _MILES),
    ),
    CarDraft(
        slug="chevrolet-corvette-z06",
        name="Chevrolet Corvette Z06",
        description="Flat-plane-crank 5.5-litre V8, the most powerful naturally aspirated V8 in production.",
        category="sports",
        daily_rate_cents=69_900,
        deposit_cents=300_000,
        discount_percent=15,
        minimum_days=1,
        fees=(_DELIVERY, _DETAIL),
    ),
)

SEEDER = Principal(Role.SERVICE, "system:seed")


async def seed_demo_fleet(database_url: str) -> int:
    """Adds each demo car whose slug is not taken yet; returns how many were added."""
    engine = create_engine(database_url, pool_size=1)
    added = 0
    try:
        for draft in DEMO_FLEET:
            async with UnitOfWork(engine, SEEDER) as uow:
                if await uow.cars.get_by_slug(draft.slug) is not None:
                    continue
                try:
                    await uow.cars.add(draft, datetime.now(UTC))
                    await uow.commit()
                except IntegrityError:
                    # Another process seeded this car at the same moment.
                    continue
                added += 1
    finally:
        await engine.dispose()
    return added
