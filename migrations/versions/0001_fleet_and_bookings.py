"""Cars with pricing and fees, customers, bookings and their audit events; the application role.

No two PENDING/CONFIRMED bookings of one car may overlap: an exclusion constraint on
(int8range(car_key, car_key, '[]') WITH =, daterange(start_date, end_date, '[)') WITH &&), which
needs no btree_gist extension. `exodrive_app` is the non-superuser role that row level security
(a later revision) applies to.

Revision ID: 0001_fleet_and_bookings
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_fleet_and_bookings"
down_revision = None
branch_labels = None
depends_on = None

APP_ROLE = "exodrive_app"
TABLES = ("cars", "car_fees", "customers", "bookings", "booking_events")


def upgrade() -> None:
    op.create_table(
        "cars",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("key", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("category", sa.String(length=80), server_default="", nullable=False),
        sa.Column("daily_rate_cents", sa.BigInteger(), nullable=False),
        sa.Column("deposit_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("discount_percent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("minimum_days", sa.Integer(), server_default="1", nullable=False),
        sa.Column("available", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("featured", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("hidden", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("daily_rate_cents >= 0", name=op.f("ck_cars_daily_rate_non_negative")),
        sa.CheckConstraint("deposit_cents >= 0", name=op.f("ck_cars_deposit_non_negative")),
        sa.CheckConstraint("discount_percent BETWEEN 0 AND 100", name=op.f("ck_cars_discount_percent_range")),
        sa.CheckConstraint("minimum_days >= 1", name=op.f("ck_cars_minimum_days_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cars")),
        sa.UniqueConstraint("id", "key", name=op.f("uq_cars_id_key")),
        sa.UniqueConstraint("key", name=op.f("uq_cars_key")),
        sa.UniqueConstraint("slug", name=op.f("uq_cars_slug")),
    )
    op.create_index(
        "ix_cars_listing", "cars", [sa.literal_column("featured DESC"), "slug", "id"], unique=False
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=40), server_default="", nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_index("ix_customers_subject", "customers", ["subject"], unique=False)
    op.create_index("uq_customers_email_lower", "customers", [sa.literal_column("lower(email)")], unique=True)
    op.create_table(
        "bookings",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("car_id", sa.UUID(), nullable=False),
        sa.Column("car_key", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("owner_subject", sa.String(length=200), nullable=True),
        sa.Column("request_id", sa.UUID(), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("contact_name", sa.String(length=200), nullable=False),
        sa.Column("contact_email", sa.String(length=320), nullable=False),
        sa.Column("contact_phone", sa.String(length=40), server_default="", nullable=False),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("daily_rate_cents", sa.BigInteger(), nullable=False),
        sa.Column("rental_cents", sa.BigInteger(), nullable=False),
        sa.Column(
            "fees",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("fees_total_cents", sa.BigInteger(), nullable=False),
        sa.Column("discount_percent", sa.Integer(), nullable=False),
        sa.Column("discount_cents", sa.BigInteger(), nullable=False),
        sa.Column("discounted_subtotal_cents", sa.BigInteger(), nullable=False),
        sa.Column("tax_rate_basis_points", sa.Integer(), nullable=False),
        sa.Column("tax_cents", sa.BigInteger(), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("deposit_cents", sa.BigInteger(), nullable=False),
        sa.Column("access_token_hash", sa.String(length=64), nullable=True),
        sa.Column("access_token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hold_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        postgresql.ExcludeConstraint(
            (sa.text("int8range(car_key, car_key, '[]')"), "="),
            (sa.text("daterange(start_date, end_date, '[)')"), "&&"),
            where=sa.text("status IN ('PENDING', 'CONFIRMED')"),
            using="gist",
            name="bookings_no_overlap",
        ),
        sa.CheckConstraint(
            "status IN ('PENDING', 'CONFIRMED', 'ACTIVE', 'COMPLETED', 'CANCELLED')",
            name=op.f("ck_bookings_status_valid"),
        ),
        sa.CheckConstraint("end_date > start_date", name=op.f("ck_bookings_dates_ordered")),
        sa.CheckConstraint(
            "total_cents >= 0 AND deposit_cents >= 0", name=op.f("ck_bookings_amounts_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["car_id", "car_key"], ["cars.id", "cars.key"], name="fk_bookings_car_id_car_key_cars"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_bookings_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
        sa.UniqueConstraint("request_id", name="uq_bookings_request_id"),
    )
    op.create_index("ix_bookings_car_id_start_date", "bookings", ["car_id", "start_date"], unique=False)
    op.create_index(
        "ix_bookings_listing",
        "bookings",
        [sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index("ix_bookings_owner_subject", "bookings", ["owner_subject"], unique=False)
    op.create_index(
        "ix_bookings_pending_hold",
        "bookings",
        ["hold_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_table(
        "car_fees",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("car_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("optional", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint("amount_cents >= 0", name=op.f("ck_car_fees_amount_non_negative")),
        sa.ForeignKeyConstraint(
            ["car_id"], ["cars.id"], name=op.f("fk_car_fees_car_id_cars"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_car_fees")),
        sa.UniqueConstraint("car_id", "position", name=op.f("uq_car_fees_car_id_position")),
    )
    op.create_table(
        "booking_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("booking_id", sa.UUID(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=200), server_default="", nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint(
            "actor_type IN ('CUSTOMER', 'GUEST', 'ADMIN', 'SERVICE', 'SYSTEM')",
            name=op.f("ck_booking_events_actor_type_valid"),
        ),
        sa.CheckConstraint(
            "from_status IS NULL OR "
            "from_status IN ('PENDING', 'CONFIRMED', 'ACTIVE', 'COMPLETED', 'CANCELLED')",
            name=op.f("ck_booking_events_from_valid"),
        ),
        sa.CheckConstraint(
            "to_status IN ('PENDING', 'CONFIRMED', 'ACTIVE', 'COMPLETED', 'CANCELLED')",
            name=op.f("ck_booking_events_to_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_booking_events_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_events")),
    )
    op.create_index("ix_booking_events_booking_id", "booking_events", ["booking_id", "id"], unique=False)

    # Roles belong to the cluster, not the database: create it only when missing, and tolerate
    # another database's migration creating it at the same moment.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END
        $$
        """  # noqa: S608 (constants only)
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES)} TO {APP_ROLE}")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")


def downgrade() -> None:
    # The role stays: other databases of the cluster may still grant it privileges.
    op.drop_index("ix_booking_events_booking_id", table_name="booking_events")
    op.drop_table("booking_events")
    op.drop_table("car_fees")
    op.drop_index(
        "ix_bookings_pending_hold", table_name="bookings", postgresql_where=sa.text("status = 'PENDING'")
    )
    op.drop_index("ix_bookings_owner_subject", table_name="bookings")
    op.drop_index("ix_bookings_listing", table_name="bookings")
    op.drop_index("ix_bookings_car_id_start_date", table_name="bookings")
    op.drop_table("bookings")
    op.drop_index("uq_customers_email_lower", table_name="customers")
    op.drop_index("ix_customers_subject", table_name="customers")
    op.drop_table("customers")
    op.drop_index("ix_cars_listing", table_name="cars")
    op.drop_table("cars")
