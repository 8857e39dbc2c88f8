"""Rental prices, computed only here: pure functions over integer cents.

subtotal = daily rate x days; + mandatory fees; the discount % applies to that sum; tax on the
discounted sum; total = discounted + tax. Each step rounds half-up to the cent. The deposit is
reported apart and is never part of the total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class Fee:
    name: str
    amount_cents: int
    optional: bool = False


@dataclass(frozen=True)
class PriceQuote:
    days: int
    daily_rate_cents: int
    rental_cents: int
    fees: tuple[Fee, ...]
    fees_total_cents: int
    discount_percent: int
    discount_cents: int
    discounted_subtotal_cents: int
    tax_rate_basis_points: int
    tax_cents: int
    total_cents: int
    deposit_cents: int
    currency: str


def round_half_up(value: Decimal) -> int:
    """Whole cents, halves away from zero (amounts here are never negative)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def tax_basis_points(tax_rate: Decimal) -> int:
    return round_half_up(tax_rate * 10_000)


def quote(
    *,
    days: int,
    daily_rate_cents: int,
    fees: Sequence[Fee],
    discount_percent: int,
    tax_rate: Decimal,
    deposit_cents: int,
    currency: str,
) -> PriceQuote:
    if days < 1:
        raise ValueError("days must be at least 1")
    if not 0 <= discount_percent <= 100:
        raise ValueError("discount_percent must be within 0..100")
    mandatory = tuple(fee for fee in fees if not fee.optional)
    rental = daily_rate_cents * days
    fees_total = sum(fee.amount_cents for fee in mandatory)
    subtotal = rental + fees_total
    discount = round_half_up(Decimal(subtotal) * discount_percent / 100)
    discounted = subtotal - discount
    tax = round_half_up(Decimal(discounted) * tax_rate)
    return PriceQuote(
        days=days,
        daily_rate_cents=daily_rate_cents,
        rental_cents=rental,
        fees=mandatory,
        fees_total_cents=fees_total,
        discount_percent=discount_percent,
        discount_cents=discount,
        discounted_subtotal_cents=discounted,
        tax_rate_basis_points=tax_basis_points(tax_rate),
        tax_cents=tax,
        total_cents=discounted + tax,
        deposit_cents=deposit_cents,
        currency=currency,
    )
