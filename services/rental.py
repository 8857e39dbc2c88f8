"""Rental days: one half-open definition for holds, price and API.

A rental from `start` to `end` holds the car on each day `start <= d < end`; billable days are
`end - start`. The next customer may pick the car up on `end`. Dates are calendar dates, never
converted through a timezone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from services.errors import FieldViolation, invalid


@dataclass(frozen=True)
class RentalPeriod:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def held_days(self) -> Iterator[date]:
        for offset in range(self.days):
            yield self.start + timedelta(days=offset)

    def overlaps(self, other: RentalPeriod) -> bool:
        return self.start < other.end and other.start < self.end


def rental_period(
    start: date,
    end: date,
    *,
    today: date,
    minimum_days: int = 1,
    maximum_days: int = 90,
    max_advance_days: int = 730,
) -> RentalPeriod:
    """A bookable period, or a VALIDATION_ERROR naming `start_date` / `end_date`.

    A rental starts at most `max_advance_days` after today: prices, fleet and calendar are not
    promised further out (and a year-9999 quote is someone probing, not a customer)."""
    problems: list[FieldViolation] = []
    latest = today + timedelta(days=max_advance_days)
    if start < today:
        problems.append(FieldViolation("start_date", f"must not be before today ({today.isoformat()})"))
    elif start > latest:
        problems.append(
            FieldViolation(
                "start_date", f"must be at most {max_advance_days} days ahead ({latest.isoformat()})"
            )
        )
    days = (end - start).days
    if days < 1:
        problems.append(FieldViolation("end_date", "must be after start_date"))
    elif days > maximum_days:
        problems.append(FieldViolation("end_date", f"a rental lasts at most {maximum_days} days"))
    elif days < minimum_days:
        problems.append(FieldViolation("end_date", f"this car is rented for at least {minimum_days} days"))
    if problems:
        raise invalid(*problems)
    return RentalPeriod(start, end)


def date_range(start: date, end: date, *, maximum_days: int) -> RentalPeriod:
    """A half-open range to look at (availability), checked for order and size but not for today."""
    days = (end - start).days
    if days < 1:
        raise invalid(FieldViolation("end_date", "must be after start_date"))
    if days > maximum_days:
        raise invalid(FieldViolation("end_date", f"a range spans at most {maximum_days} days"))
    return RentalPeriod(start, end)
