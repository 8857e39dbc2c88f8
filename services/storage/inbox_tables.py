"""Inbox and webhook tables, on the same MetaData as the rest of the schema.

Statuses are CHECKed against the vocabulary in `services.email_status`, the one the writer and
the reader both use. `email_events` is append-only: the application role may only insert and read
it (migration 0002 grants nothing more).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from services.email_status import RESEND_PROVIDER, EmailStatus, WebhookEventStatus
from services.storage.tables import metadata


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


EMAIL_STATUS_VALUES = [s.value for s in EmailStatus]
WEBHOOK_STATUS_VALUES = [s.value for s in WebhookEventStatus]
PROVIDERS = [RESEND_PROVIDER]

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()),
    Column("provider", String(32), nullable=False),
    # The provider's message id (`svix-id`): a redelivery repeats it.
    Column("provider_event_id", String(200), nullable=False),
    Column("event_type", String(100), nullable=True),
    # The exact bytes received, so that a replay applies what was signed.
    Column("body", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Only deliveries whose signature verified are stored (failures are counted, not kept).
    Column("verified", Boolean, nullable=False, server_default=text("true")),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("last_error", Text, nullable=True),
    Column("processed_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("provider", "provider_event_id"),
    CheckConstraint(_in("provider", PROVIDERS), name="provider_valid"),
    CheckConstraint(_in("status", WEBHOOK_STATUS_VALUES), name="status_valid"),
    CheckConstraint("attempts >= 1", name="attempts_positive"),
    Index("ix_webhook_events_listing", text("received_at DESC"), text("id DESC")),
    Index("ix_webhook_events_status", "status", text("received_at DESC"), text("id DESC")),
)

inbox_emails = Table(
    "inbox_emails",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()),
    Column("resend_email_id", String(200), nullable=False),
    Column("sender", String(320), nullable=True),
    Column("recipients", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    # The first recipient, lower-cased: what the recipient filter and the search look at.
    Column("recipient", String(320), nullable=True),
    Column("subject", Text, nullable=True),
    Column("email_type", String(64), nullable=True),
    Column("tags", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("booking_id", UUID(as_uuid=True), ForeignKey("bookings.id", ondelete="SET NULL"), nullable=True),
    Column("status", String(20), nullable=False),
    # The status's precedence (services.email_status.PRECEDENCE), to order same-instant events.
    Column("status_rank", SmallInteger, nullable=False),
    Column("last_event_type", String(100), nullable=False),
    Column("last_event_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("opened_at", DateTime(timezone=True), nullable=True),
    Column("clicked_at", DateTime(timezone=True), nullable=True),
    Column("bounce_type", String(100), nullable=True),
    Column("bounce_description", Text, nullable=True),
    Column("complained", Boolean, nullable=False, server_default=text("false")),
    # When the provider created (sent) the email; the inbox sorts and filters on it.
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Trigrams of recipient, sender and subject for indexed substring search without pg_trgm
    # (migration 0004 creates the IMMUTABLE function inbox_trigrams).
    Column(
        "search_trigrams",
        ARRAY(Text),
        Computed(
            "inbox_trigrams(coalesce(recipient, '') || chr(10) || coalesce(sender, '') "
            "|| chr(10) || coalesce(subject, ''))",
            persisted=True,
        ),
        nullable=False,
    ),
    UniqueConstraint("resend_email_id"),
    CheckConstraint(_in("status", EMAIL_STATUS_VALUES), name="status_valid"),
    Index("ix_inbox_emails_listing", text("sent_at DESC"), text("id DESC")),
    Index("ix_inbox_emails_status", "status", text("sent_at DESC"), text("id DESC")),
    Index("ix_inbox_emails_email_type", "email_type", text("sent_at DESC"), text("id DESC")),
    Index("ix_inbox_emails_recipient", "recipient", text("sent_at DESC")),
    Index("ix_inbox_emails_booking_id", "booking_id"),
    Index("ix_inbox_emails_search_trigrams", "search_trigrams", postgresql_using="gin"),
)

email_events = Table(
    "email_events",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("email_id", UUID(as_uuid=True), ForeignKey("inbox_emails.id", ondelete="CASCADE"), nullable=False),
    Column(
        "webhook_event_id",
        UUID(as_uuid=True),
        ForeignKey("webhook_events.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_type", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("payload", JSONB, nullable=False),
    # One history row per delivery, so a replay appends nothing new.
    UniqueConstraint("webhook_event_id"),
    CheckConstraint(_in("status", EMAIL_STATUS_VALUES), name="status_valid"),
    Index("ix_email_events_email_id", "email_id", "occurred_at"),
)
