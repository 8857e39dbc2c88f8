"""The schema as SQLAlchemy Core tables. Migrations must match it (a test compares them).

Money is integer cents, rental dates are DATE, instants TIMESTAMPTZ. Cars carry an integer
identity `key` beside their UUID so that the no-overlap exclusion constraint on bookings can use
`int8range(car_key, car_key, '[]') WITH =`, which needs no btree_gist extension.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID, ExcludeConstraint

from services.model import holding_statuses_sql

# Stable constraint names, so migrations and error mapping can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

BOOKING_STATUSES = ("PENDING", "CONFIRMED", "ACTIVE", "COMPLETED", "CANCELLED")
ACTOR_TYPES = ("CUSTOMER", "GUEST", "ADMIN", "SERVICE", "SYSTEM")
BOOKINGS_NO_OVERLAP = "bookings_no_overlap"
BOOKINGS_REQUEST_ID_UNIQUE = "uq_bookings_request_id"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _created() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated() -> Column[object]:
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())


cars = Table(
    "cars",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()),
    Column("key", BigInteger, Identity(always=True), nullable=False),
    Column("slug", String(80), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("category", String(80), nullable=False, server_default=""),
    Column("daily_rate_cents", BigInteger, nullable=False),
    Column("deposit_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("discount_percent", Integer, nullable=False, server_default="0"),
    Column("minimum_days", Integer, nullable=False, server_default="1"),
    Column("available", Boolean, nullable=False, server_default=text("true")),
    Column("featured", Boolean, nullable=False, server_default=text("false")),
    Column("hidden", Boolean, nullable=False, server_default=text("false")),
    _created(),
    _updated(),
    UniqueConstraint("slug"),
    UniqueConstraint("key"),
    # Target of the bookings' composite foreign key: a booking's car_key is its car's key.
    UniqueConstraint("id", "key"),
    CheckConstraint("daily_rate_cents >= 0", name="daily_rate_non_negative"),
    CheckConstraint("deposit_cents >= 0", name="deposit_non_negative"),
    CheckConstraint("discount_percent BETWEEN 0 AND 100", name="discount_percent_range"),
    CheckConstraint("minimum_days >= 1", name="minimum_days_positive"),
    Index("ix_cars_listing", text("featured DESC"), "slug", "id"),
)

car_fees = Table(
    "car_fees",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()),
    Column("car_id", UUID(as_uuid=True), ForeignKey("cars.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(120), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("optional", Boolean, nullable=False, server_default=text("false")),
    UniqueConstraint("car_id", "position"),
    CheckConstraint("amount_cents >= 0", name="amount_non_negative"),
)

customers = Table(
    "customers",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()),
    Column("email", String(320), nullable=False),
    Column("full_name", String(200), nullable=False),
    Column("phone", String(40), nullable=False, server_default=""),
    # The JWT subject of the account that first booked with this email; NULL for guests.
    Column("subject", String(200), nullable=True),
    _created(),
    _updated(),
    Index("uq_customers_email_lower", func.lower(text("email")), unique=True),
    Index("ix_customers_subject", "subject"),
)

bookings = Table(
    "bookings",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()),
    Column("car_id", UUID(as_uuid=True), nullable=False),
    Column("car_key", BigInteger, nullable=False),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    # The JWT subject of the customer who booked; NULL for guests. Ownership and row level
    # security read it.
    Column("owner_subject", String(200), nullable=True),
    Column("request_id", UUID(as_uuid=True), nullable=False),
    # Hash of the creating request's content: a reused request_id with other content is refused.
    Column("request_fingerprint", String(64), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("contact_name", String(200), nullable=False),
    Column("contact_email", String(320), nullable=False),
    Column("contact_phone", String(40), nullable=False, server_default=""),
    Column("notes", Text, nullable=False, server_default=""),
    # The price as quoted when booked, step by step.
    Column("currency", String(3), nullable=False),
    Column("days", Integer, nullable=False),
    Column("daily_rate_cents", BigInteger, nullable=False),
    Column("rental_cents", BigInteger, nullable=False),
    Column("fees", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("fees_total_cents", BigInteger, nullable=False),
    Column("discount_percent", Integer, nullable=False),
    Column("discount_cents", BigInteger, nullable=False),
    Column("discounted_subtotal_cents", BigInteger, nullable=False),
    Column("tax_rate_basis_points", Integer, nullable=False),
    Column("tax_cents", BigInteger, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("deposit_cents", BigInteger, nullable=False),
    # SHA-256 of the guest access token; the token itself is never stored.
    Column("access_token_hash", String(64), nullable=True),
    Column("access_token_expires_at", DateTime(timezone=True), nullable=True),
    Column("hold_expires_at", DateTime(timezone=True), nullable=True),
    _created(),
    _updated(),
    ForeignKeyConstraint(
        ["car_id", "car_key"], ["cars.id", "cars.key"], name="fk_bookings_car_id_car_key_cars"
    ),
    UniqueConstraint("request_id", name=BOOKINGS_REQUEST_ID_UNIQUE),
    CheckConstraint("end_date > start_date", name="dates_ordered"),
    CheckConstraint(_in("status", BOOKING_STATUSES), name="status_valid"),
    CheckConstraint("total_cents >= 0 AND deposit_cents >= 0", name="amounts_non_negative"),
    ExcludeConstraint(
        (text("int8range(car_key, car_key, '[]')"), "="),
        (text("daterange(start_date, end_date, '[)')"), "&&"),
        where=text(f"status IN ({holding_statuses_sql()})"),
        using="gist",
        name=BOOKINGS_NO_OVERLAP,
    ),
    Index("ix_bookings_listing", text("created_at DESC"), text("id DESC")),
    Index("ix_bookings_owner_subject", "owner_subject"),
    Index("ix_bookings_car_id_start_date", "car_id", "start_date"),
    Index(
        "ix_bookings_pending_hold",
        "hold_expires_at",
        postgresql_where=text("status = 'PENDING'"),
    ),
)

booking_events = Table(
    "booking_events",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("booking_id", UUID(as_uuid=True), ForeignKey("bookings.id", ondelete="CASCADE"), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("actor_type", String(16), nullable=False),
    Column("actor_id", String(200), nullable=False, server_default=""),
    Column("from_status", String(16), nullable=True),
    Column("to_status", String(16), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    CheckConstraint(_in("actor_type", ACTOR_TYPES), name="actor_type_valid"),
    CheckConstraint(f"from_status IS NULL OR {_in('from_status', BOOKING_STATUSES)}", name="from_valid"),
    CheckConstraint(_in("to_status", BOOKING_STATUSES), name="to_valid"),
    Index("ix_booking_events_booking_id", "booking_id", "id"),
)
