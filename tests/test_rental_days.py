"""Half-open rental days: [start, end) is held, billed and shown the same way."""

from __future__ import annotations

from datetime import date

import pytest

from services.errors import DomainError, Reason
from services.rental import RentalPeriod, date_range, rental_period

TODAY = date(2030, 6, 1)


def test_billable_days_are_end_minus_start() -> None:
    period = RentalPeriod(date(2030, 6, 10), date(2030, 6, 11))
    assert period.days == 1
    assert list(period.held_days()) == [date(2030, 6, 10)]


def test_a_booking_ending_on_d_and_one_starting_on_d_do_not_overlap() -> None:
    first = RentalPeriod(date(2030, 6, 10), date(2030, 6, 14))
    second = RentalPeriod(date(2030, 6, 14), date(2030, 6, 16))
    assert not first.overlaps(second)
    assert not second.overlaps(first)


def test_one_shared_day_is_an_overlap() -> None:
    first = RentalPeriod(date(2030, 6, 10), date(2030, 6, 14))
    assert first.overlaps(RentalPeriod(date(2030, 6, 13), date(2030, 6, 15)))
    assert first.overlaps(RentalPeriod(date(2030, 6, 8), date(2030, 6, 11)))


def test_days_across_a_dst_change_are_plain_calendar_days() -> None:
    # US clocks change on 2030-03-10; calendar arithmetic must not notice.
    period = RentalPeriod(date(2030, 3, 8), date(2030, 3, 12))
    assert period.days == 4
    assert [d.day for d in period.held_days()] == [8, 9, 10, 11]


def _reason_fields(error: DomainError) -> list[str]:
    return [violation.field for violation in error.violations]


def test_a_start_before_today_is_refused() -> None:
    with pytest.raises(DomainError) as caught:
        rental_period(date(2030, 5, 31), date(2030, 6, 3), today=TODAY)
    assert caught.value.reason is Reason.VALIDATION_ERROR
    assert _reason_fields(caught.value) == ["start_date"]


def test_starting_today_is_allowed() -> None:
    assert rental_period(TODAY, date(2030, 6, 2), today=TODAY).days == 1


@pytest.mark.parametrize(
    ("end", "minimum"),
    [(date(2030, 6, 10), 1), (date(2030, 6, 9), 1), (date(2030, 9, 9), 1), (date(2030, 6, 12), 3)],
)
def test_lengths_outside_1_to_90_days_or_under_the_minimum_are_refused(end: date, minimum: int) -> None:
    with pytest.raises(DomainError) as caught:
        rental_period(date(2030, 6, 10), end, today=TODAY, minimum_days=minimum, maximum_days=90)
    assert _reason_fields(caught.value) == ["end_date"]


def test_ninety_days_and_exactly_the_minimum_are_allowed() -> None:
    assert rental_period(date(2030, 6, 10), date(2030, 9, 8), today=TODAY).days == 90
    assert rental_period(date(2030, 6, 10), date(2030, 6, 13), today=TODAY, minimum_days=3).days == 3


def test_an_availability_range_may_look_at_the_past_but_not_run_backwards() -> None:
    assert date_range(date(2020, 1, 1), date(2020, 1, 2), maximum_days=366).days == 1
    with pytest.raises(DomainError):
        date_range(date(2020, 1, 2), date(2020, 1, 2), maximum_days=366)
    with pytest.raises(DomainError):
        date_range(date(2020, 1, 1), date(2021, 1, 3), maximum_days=366)
