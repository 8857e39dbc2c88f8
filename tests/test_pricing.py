"""Prices: integer cents, half-up at each step, the deposit apart."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.pricing import Fee, quote, round_half_up

TAX = Decimal("0.10")


def price(**overrides: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {
        "days": 4,
        "daily_rate_cents": 5000,
        "fees": (Fee("Cleaning", 2500), Fee("Delivery", 1500)),
        "discount_percent": 10,
        "tax_rate": TAX,
        "deposit_cents": 100000,
        "currency": "USD",
    }
    values.update(overrides)
    return quote(**values)  # type: ignore[arg-type]


def test_worked_example_comes_to_237_60() -> None:
    result = price()
    assert result.rental_cents == 20000
    assert result.fees_total_cents == 4000
    assert result.discount_cents == 2400
    assert result.discounted_subtotal_cents == 21600
    assert result.tax_cents == 2160
    assert result.total_cents == 23760
    assert result.tax_rate_basis_points == 1000


def test_deposit_is_reported_but_not_in_the_total() -> None:
    result = price(deposit_cents=250000)
    assert result.deposit_cents == 250000
    assert result.total_cents == 23760


def test_optional_fees_are_not_charged() -> None:
    result = price(fees=(Fee("Cleaning", 2500), Fee("Child seat", 900, optional=True)))
    assert [fee.name for fee in result.fees] == ["Cleaning"]
    assert result.fees_total_cents == 2500


def test_half_a_cent_of_discount_rounds_up() -> None:
    # 1 day at 0.05 with 10 % off: discount 0.5 cents -> 1 cent.
    result = price(days=1, daily_rate_cents=5, fees=(), discount_percent=10)
    assert result.discount_cents == 1
    assert result.discounted_subtotal_cents == 4


def test_just_under_half_a_cent_rounds_down() -> None:
    # 0.49 cents of discount: 7 cents x 7 % = 0.49.
    result = price(days=1, daily_rate_cents=7, fees=(), discount_percent=7)
    assert result.discount_cents == 0


def test_half_a_cent_of_tax_rounds_up() -> None:
    # 0.25 x 10 % tax = 2.5 cents -> 3 cents.
    result = price(days=1, daily_rate_cents=25, fees=(), discount_percent=0)
    assert result.tax_cents == 3
    assert result.total_cents == 28


def test_zero_discount_leaves_the_subtotal() -> None:
    result = price(discount_percent=0)
    assert result.discount_cents == 0
    assert result.discounted_subtotal_cents == 24000
    assert result.tax_cents == 2400
    assert result.total_cents == 26400


def test_full_discount_makes_the_rental_free() -> None:
    result = price(discount_percent=100)
    assert result.discount_cents == 24000
    assert result.discounted_subtotal_cents == 0
    assert result.tax_cents == 0
    assert result.total_cents == 0


def test_round_half_up_on_exact_halves() -> None:
    assert round_half_up(Decimal("0.5")) == 1
    assert round_half_up(Decimal("1.5")) == 2
    assert round_half_up(Decimal("2.5")) == 3
    assert round_half_up(Decimal("2.4999")) == 2


@pytest.mark.parametrize(("days", "discount"), [(0, 10), (1, -1), (1, 101)])
def test_impossible_inputs_are_refused(days: int, discount: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        price(days=days, discount_percent=discount)
