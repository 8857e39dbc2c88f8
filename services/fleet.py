"""The car catalogue: listing, reading, availability, price quotes, and admin writes."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from services import page_tokens, system_callers
from services.changes import ChangeNotifier, car_tag, fleet_tag
from services.clock import Clock
from services.errors import DomainError, FieldViolation, Reason, invalid, invalid_field
from services.model import Availability, Car, CarDraft
from services.pricing import Fee, PriceQuote, quote
from services.principal import Principal
from services.rental import date_range, rental_period
from services.storage.cars import CarCursor
from services.storage.unit_of_work import UnitOfWorkFactory

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
# The widest range an availability query may span (one year, leap day included).
MAX_AVAILABILITY_DAYS = 366
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Bounds that keep one car (and so a page of 100) small: the fees travel with every listing.
MAX_FEES = 20
MAX_DESCRIPTION_CHARS = 5000
# Fields of CarDraft that update masks may name.
CAR_FIELDS = frozenset(field.name for field in dataclasses.fields(CarDraft))


def car_not_found(car_id: UUID) -> DomainError:
    return DomainError(Reason.CAR_NOT_FOUND, f"car {car_id} not found", metadata={"car_id": str(car_id)})


def car_unavailable(car_id: UUID) -> DomainError:
    return DomainError(
        Reason.CAR_UNAVAILABLE, f"car {car_id} is not available for booking", metadata={"car_id": str(car_id)}
    )


def require_staff(principal: Principal) -> None:
    if not principal.is_staff:
        raise DomainError(Reason.PERMISSION_DENIED, "only staff may do this")


def page_size_of(page_size: int) -> int:
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise invalid_field("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
    return page_size or DEFAULT_PAGE_SIZE


def validate_car(draft: CarDraft, *, maximum_days: int, currency: str, prefix: str = "car.") -> None:
    """Every rule a stored car obeys, reported per field (`car.slug`, `car.fees[1].amount`, ...).

    A car's money is in the business `currency` (settings): prices, tax and bookings are computed
    and compared in one currency, and a well-formed but foreign code would still be priced wrong.
    """
    problems: list[FieldViolation] = []

    def bad(name: str, description: str) -> None:
        problems.append(FieldViolation(prefix + name, description))

    if not SLUG_PATTERN.match(draft.slug) or len(draft.slug) > 80:
        bad("slug", "lower-case letters, digits and single dashes, at most 80 characters")
    if not draft.name.strip() or len(draft.name) > 200:
        bad("name", "required, at most 200 characters")
    if len(draft.description) > MAX_DESCRIPTION_CHARS:
        bad("description", f"at most {MAX_DESCRIPTION_CHARS} characters")
    if len(draft.category) > 80:
        bad("category", "at most 80 characters")
    if draft.daily_rate_cents <= 0:
        bad("daily_rate.amount_minor", "must be positive")
    if draft.deposit_cents < 0:
        bad("deposit.amount_minor", "must not be negative")
    if draft.currency != currency:
        bad("daily_rate.currency_code", f"must be {currency}, the business currency")
    if not 0 <= draft.discount_percent <= 100:
        bad("discount_percent", "must be between 0 and 100")
    if not 1 <= draft.minimum_days <= maximum_days:
        bad("minimum_days", f"must be between 1 and {maximum_days}")
    if len(draft.fees) > MAX_FEES:
        bad("fees", f"at most {MAX_FEES} fees")
    for index, fee in enumerate(draft.fees[:MAX_FEES]):
        if not fee.name.strip() or len(fee.name) > 120:
            bad(f"fees[{index}].name", "required, at most 120 characters")
        if fee.amount_cents < 0:
            bad(f"fees[{index}].amount.amount_minor", "must not be negative")
    if problems:
        raise invalid(*problems)


def _is_unique_violation(error: IntegrityError, constraint: str) -> bool:
    diag = getattr(error.orig, "diag", None)
    return getattr(error.orig, "sqlstate", None) == "23505" and (
        getattr(diag, "constraint_name", None) == constraint
    )


class FleetService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        notifier: ChangeNotifier,
        *,
        tax_rate: Decimal,
        maximum_days: int = 90,
        currency: str = "USD",
        max_advance_days: int = 730,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._notifier = notifier
        self._tax_rate = tax_rate
        self._maximum_days = maximum_days
        self._currency = currency
        self._max_advance_days = max_advance_days

    async def list_cars(
        self,
        principal: Principal,
        *,
        page_size: int = 0,
        page_token: str = "",
        category: str = "",
        featured_only: bool = False,
        show_hidden: bool = False,
    ) -> tuple[list[Car], str]:
        """A page of listed (not hidden) cars, featured first, and the next page's token; staff
        may ask for hidden cars too."""
        if show_hidden and not principal.is_staff:
            raise DomainError(
                Reason.PERMISSION_DENIED, "only staff may list hidden cars", metadata={"field": "show_hidden"}
            )
        limit = page_size_of(page_size)
        filters = {"category": category, "featured_only": featured_only, "show_hidden": show_hidden}
        after = None
        if page_token:
            position = page_tokens.decode(page_token, filters)
            try:
                after = CarCursor(bool(position["f"]), str(position["s"]), UUID(str(position["i"])))
            except (KeyError, ValueError) as exc:
                raise invalid_field("page_token", "is not a token returned by this listing") from exc
        async with self._uow(principal) as uow:
            found = await uow.cars.page(
                limit=limit + 1,
                after=after,
                category=category or None,
                featured_only=featured_only,
                include_hidden=show_hidden,
            )
        page, more = found[:limit], len(found) > limit
        token = ""
        if more:
            last = page[-1]
            token = page_tokens.encode({"f": last.featured, "s": last.slug, "i": str(last.id)}, filters)
        return page, token

    async def get_car(self, principal: Principal, car_id: UUID) -> Car:
        async with self._uow(principal) as uow:
            car = await uow.cars.get(car_id)
        if car is None:
            raise car_not_found(car_id)
        return car

    async def availability(self, principal: Principal, car_id: UUID, start: date, end: date) -> Availability:
        period = date_range(start, end, maximum_days=MAX_AVAILABILITY_DAYS)
        # Holds of every owner count; the caller learns only which days are taken.
        async with self._uow(system_callers.AVAILABILITY) as uow:
            car = await uow.cars.get(car_id)
            if car is None:
                raise car_not_found(car_id)
            holds = await uow.bookings.holds(car_id, start, end, self._clock.now())
        if not car.bookable:
            taken = set(period.held_days())
        else:
            taken = set()
            for hold_start, hold_end in holds:
                day = max(hold_start, start)
                while day < min(hold_end, end):
                    taken.add(day)
                    day += timedelta(days=1)
        return Availability(car_id, start, end, tuple(sorted(taken)))

    async def quote(self, principal: Principal, car_id: UUID, start: date, end: date) -> PriceQuote:
        car = await self.get_car(principal, car_id)
        if not car.bookable:
            raise car_unavailable(car.id)
        return self.price(car, start, end)

    def price(self, car: Car, start: date, end: date) -> PriceQuote:
        """The price of renting `car` over [start, end): the one place prices come from."""
        period = rental_period(
            start,
            end,
            today=self._clock.today(),
            minimum_days=car.minimum_days,
            maximum_days=self._maximum_days,
            max_advance_days=self._max_advance_days,
        )
        return quote(
            days=period.days,
            daily_rate_cents=car.daily_rate_cents,
            fees=car.fees,
            discount_percent=car.discount_percent,
            tax_rate=self._tax_rate,
            deposit_cents=car.deposit_cents,
            currency=car.currency,
        )

    async def create_car(self, principal: Principal, draft: CarDraft) -> Car:
        require_staff(principal)
        validate_car(draft, maximum_days=self._maximum_days, currency=self._currency)
        async with self._uow(principal) as uow:
            try:
                car_id = await uow.cars.add(draft, self._clock.now())
                await uow.commit()
            except IntegrityError as exc:
                if _is_unique_violation(exc, "uq_cars_slug"):
                    raise invalid_field("car.slug", "is already used by another car") from exc
                raise
        await self._notifier.invalidate([fleet_tag(), car_tag(car_id)])
        return await self.get_car(principal, car_id)

    async def update_car(self, principal: Principal, car_id: UUID, changes: Mapping[str, object]) -> Car:
        """Applies `changes` (CarDraft field -> new value) to a car."""
        require_staff(principal)
        unknown = set(changes) - CAR_FIELDS
        if unknown:
            raise invalid_field("update_mask", f"not writable: {', '.join(sorted(unknown))}")
        async with self._uow(principal) as uow:
            current = await uow.cars.get(car_id)
            if current is None:
                raise car_not_found(car_id)
            merged = dataclasses.replace(current, **changes)  # type: ignore[arg-type]
            validate_car(merged, maximum_days=self._maximum_days, currency=self._currency)
            columns = {name: value for name, value in changes.items() if name != "fees"}
            fees: Sequence[Fee] | None = merged.fees if "fees" in changes else None
            try:
                await uow.cars.update(car_id, columns, fees, self._clock.now())
                await uow.commit()
            except IntegrityError as exc:
                if _is_unique_violation(exc, "uq_cars_slug"):
                    raise invalid_field("car.slug", "is already used by another car") from exc
                raise
        await self._notifier.invalidate([fleet_tag(), car_tag(car_id)])
        return await self.get_car(principal, car_id)
