"""Rows written with plain SQL, bypassing the services, to prove the database's own constraints."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class RawCar:
    car_id: object
    key: int
    customer_id: object


def insert_car_and_customer(conn: psycopg.Connection[object]) -> RawCar:
    """A car and a customer to hang raw bookings on (unique slug and email per call)."""
    car_id, key = conn.execute(
        "INSERT INTO cars (slug, name, daily_rate_cents, deposit_cents, currency) "
        "VALUES (%s, 'Raw', 100, 0, 'USD') RETURNING id, key",
        (f"raw-{uuid.uuid4().hex[:8]}",),
    ).fetchone()  # type: ignore[misc]
    customer_id = conn.execute(
        "INSERT INTO customers (email, full_name) VALUES (%s, 'Raw') RETURNING id",
        (f"raw-{uuid.uuid4().hex[:8]}@example.com",),
    ).fetchone()[0]  # type: ignore[index]
    return RawCar(car_id, key, customer_id)


def insert_booking(
    conn: psycopg.Connection[object],
    car: RawCar,
    start: str,
    end: str,
    status: str,
    *,
    car_key: int | None = None,
) -> None:
    """A booking of `car` from `start` to `end`; `car_key` overrides the car's own key."""
    conn.execute(
        "INSERT INTO bookings (car_id, car_key, customer_id, request_id, request_fingerprint, "
        "start_date, end_date, status, contact_name, contact_email, currency, days, "
        "daily_rate_cents, rental_cents, fees_total_cents, discount_percent, discount_cents, "
        "discounted_subtotal_cents, tax_rate_basis_points, tax_cents, total_cents, deposit_cents) "
        "VALUES (%s, %s, %s, gen_random_uuid(), 'f', %s, %s, %s, 'R', 'r@example.com', 'USD', "
        "1, 100, 100, 0, 0, 0, 100, 0, 0, 100, 0)",
        (car.car_id, car.key if car_key is None else car_key, car.customer_id, start, end, status),
    )
