"""Inbox emails, their append-only event history, and received webhook deliveries.

Row level security is enabled (and forced) after the tables exist: only the admin and service
roles, published per transaction in `exodrive.role`, may read or write them.

Revision ID: 0002_inbox_and_webhooks
Revises: 0001_fleet_and_bookings
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_inbox_and_webhooks"
down_revision = "0001_fleet_and_bookings"
branch_labels = None
depends_on = None

APP_ROLE = "exodrive_app"
# Frozen copies of the vocabularies at this revision (services.email_status): a later change to
# the code must come with its own migration.
EMAIL_STATUSES = (
    "sent",
    "delivery_delayed",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "complained",
    "failed",
)
WEBHOOK_STATUSES = ("processed", "ignored", "failed")
TABLES = ("webhook_events", "inbox_emails", "email_events")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts(name: str, *, nullable: bool = True, default: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default else None,
    )


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.func.gen_random_uuid()),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        _ts("signed_at", nullable=False),
        _ts("received_at", nullable=False, default=True),
        sa.Column("verified", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("processed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_events"),
        sa.UniqueConstraint(
            "provider", "provider_event_id", name="uq_webhook_events_provider_provider_event_id"
        ),
        sa.CheckConstraint("provider IN ('resend')", name="ck_webhook_events_provider_valid"),
        sa.CheckConstraint(_in("status", WEBHOOK_STATUSES), name="ck_webhook_events_status_valid"),
        sa.CheckConstraint("attempts >= 1", name="ck_webhook_events_attempts_positive"),
    )
    op.create_index(
        "ix_webhook_events_listing", "webhook_events", [sa.text("received_at DESC"), sa.text("id DESC")]
    )
    op.create_index(
        "ix_webhook_events_status",
        "webhook_events",
        ["status", sa.text("received_at DESC"), sa.text("id DESC")],
    )

    op.create_table(
        "inbox_emails",
        sa.Column("id", postgresql.UUID(as_uuid=True), server_default=sa.func.gen_random_uuid()),
        sa.Column("resend_email_id", sa.String(200), nullable=False),
        sa.Column("sender", sa.String(320), nullable=True),
        sa.Column(
            "recipients",
            postgresql.ARRAY(sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'::text[]"),
        ),
        sa.Column("recipient", sa.String(320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("email_type", sa.String(64), nullable=True),
        sa.Column("tags", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("booking_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_rank", sa.SmallInteger(), nullable=False),
        sa.Column("last_event_type", sa.String(100), nullable=False),
        _ts("last_event_at", nullable=False),
        _ts("delivered_at"),
        _ts("opened_at"),
        _ts("clicked_at"),
        sa.Column("bounce_type", sa.String(100), nullable=True),
        sa.Column("bounce_description", sa.Text(), nullable=True),
        sa.Column("complained", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        _ts("sent_at", nullable=False),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        sa.PrimaryKeyConstraint("id", name="pk_inbox_emails"),
        sa.UniqueConstraint("resend_email_id", name="uq_inbox_emails_resend_email_id"),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name="fk_inbox_emails_booking_id_bookings",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(_in("status", EMAIL_STATUSES), name="ck_inbox_emails_status_valid"),
    )
    op.create_index("ix_inbox_emails_listing", "inbox_emails", [sa.text("sent_at DESC"), sa.text("id DESC")])
    op.create_index(
        "ix_inbox_emails_status", "inbox_emails", ["status", sa.text("sent_at DESC"), sa.text("id DESC")]
    )
    op.create_index(
        "ix_inbox_emails_email_type",
        "inbox_emails",
        ["email_type", sa.text("sent_at DESC"), sa.text("id DESC")],
    )
    op.create_index("ix_inbox_emails_recipient", "inbox_emails", ["recipient", sa.text("sent_at DESC")])
    op.create_index("ix_inbox_emails_booking_id", "inbox_emails", ["booking_id"])

    op.create_table(
        "email_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True)),
        sa.Column("email_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("webhook_event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _ts("occurred_at", nullable=False),
        _ts("received_at", nullable=False, default=True),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_email_events"),
        sa.UniqueConstraint("webhook_event_id", name="uq_email_events_webhook_event_id"),
        sa.ForeignKeyConstraint(
            ["email_id"],
            ["inbox_emails.id"],
            name="fk_email_events_email_id_inbox_emails",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["webhook_event_id"],
            ["webhook_events.id"],
            name="fk_email_events_webhook_event_id_webhook_events",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(_in("status", EMAIL_STATUSES), name="ck_email_events_status_valid"),
    )
    op.create_index("ix_email_events_email_id", "email_events", ["email_id", "occurred_at"])

    # Row level security, after the tables: staff only. `current_setting(..., true)` is NULL when
    # the transaction published no role, and NULL IN (...) is not true, so nothing is visible.
    staff = "current_setting('exodrive.role', true) IN ('admin', 'service')"
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_staff ON {table} USING ({staff}) WITH CHECK ({staff})")
    # email_events is append-only for the application: no UPDATE or DELETE grant.
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON webhook_events, inbox_emails TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT ON email_events TO {APP_ROLE}")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP POLICY IF EXISTS {table}_staff ON {table}")
    op.drop_table("email_events")
    op.drop_table("inbox_emails")
    op.drop_table("webhook_events")
