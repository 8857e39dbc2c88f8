"""Records of the inbox and of received webhooks, as the services and repositories exchange them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from services import page_tokens
from services.email_status import EmailStatus, WebhookEventStatus
from services.errors import invalid_field


@dataclass(frozen=True)
class Email:
    id: UUID
    resend_email_id: str
    sender: str | None
    recipients: list[str]
    subject: str | None
    email_type: str | None
    tags: dict[str, str]
    booking_id: UUID | None
    status: EmailStatus
    last_event_type: str
    last_event_at: datetime
    delivered_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None
    bounce_type: str | None
    bounce_description: str | None
    complained: bool
    sent_at: datetime
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class EmailEvent:
    webhook_event_id: UUID
    event_type: str
    status: EmailStatus
    occurred_at: datetime
    received_at: datetime


@dataclass(frozen=True)
class LinkedBooking:
    id: UUID
    car_id: UUID
    status: str
    start_date: date
    end_date: date


@dataclass(frozen=True)
class EmailDetail:
    email: Email
    events: list[EmailEvent]
    booking: LinkedBooking | None


@dataclass(frozen=True)
class Cursor:
    """Position after the last row of a page (newest first): its sort time and id."""

    at: datetime
    id: UUID

    def token(self, filters: Mapping[str, object]) -> str:
        return page_tokens.encode({"t": self.at.isoformat(), "i": str(self.id)}, filters)

    @classmethod
    def from_token(cls, token: str, filters: Mapping[str, object]) -> Cursor:
        """The cursor a page token names, or a VALIDATION_ERROR on `page_token`."""
        position = page_tokens.decode(token, filters)
        try:
            return cls(datetime.fromisoformat(str(position["t"])), UUID(str(position["i"])))
        except (KeyError, ValueError) as exc:
            raise invalid_field("page_token", "is not a token returned by this listing") from exc


@dataclass(frozen=True)
class EmailFilter:
    status: EmailStatus | None = None
    email_type: str | None = None
    # Lower-cased exact address.
    recipient: str | None = None
    booking_id: UUID | None = None
    sent_from: datetime | None = None
    sent_before: datetime | None = None
    # Matched literally (wildcards escaped), case-insensitively.
    search: str | None = None


@dataclass(frozen=True)
class EmailPage:
    emails: list[Email]
    next_cursor: Cursor | None
    # Matches over all pages, counted up to a cap; `capped` when more match.
    total: int
    capped: bool = False


@dataclass(frozen=True)
class EmailStats:
    total: int
    by_status: dict[EmailStatus, int]
    by_type: dict[str, int]
    delivered: int
    opened: int
    bounced: int
    complained: int

    @staticmethod
    def rate(part: int, whole: int) -> float:
        return part / whole if whole else 0.0


@dataclass(frozen=True)
class WebhookEvent:
    id: UUID
    provider: str
    provider_event_id: str
    event_type: str | None
    body: bytes
    headers: dict[str, str]
    signed_at: datetime
    received_at: datetime
    status: WebhookEventStatus
    attempts: int
    last_error: str | None
    processed_at: datetime | None


@dataclass(frozen=True)
class WebhookEventFilter:
    provider: str | None = None
    status: WebhookEventStatus | None = None
    received_from: datetime | None = None
    received_before: datetime | None = None


@dataclass(frozen=True)
class WebhookEventPage:
    events: list[WebhookEvent]
    next_cursor: Cursor | None = None
