"""Reading Resend's event payloads: the shapes real deliveries have, not the ones we wish they had.

Real bodies carry `from` as `Name <addr>`, `to` as a list, `tags` either as an object or as a
list of `{name, value}`, and bounce details under camelCase keys. Unknown event types are
recognised here (and later stored and ignored), never an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.email_status import EVENT_STATUS, EmailStatus
from services.errors import FieldViolation

# The whole body is the request's `body` field; violations name paths inside it.
BODY_FIELD = "body"


@dataclass(frozen=True)
class EmailEventFacts:
    """What one email event says about its email."""

    event_type: str
    status: EmailStatus
    occurred_at: datetime
    provider_email_id: str
    sender: str | None
    recipients: list[str]
    subject: str | None
    email_created_at: datetime | None
    tags: dict[str, str] = field(default_factory=dict)
    bounce_type: str | None = None
    bounce_description: str | None = None

    @property
    def email_type(self) -> str | None:
        return self.tags.get("email_type") or None

    @property
    def booking_id(self) -> UUID | None:
        """The `booking_id` tag when it is a UUID; anything else links nothing."""
        raw = self.tags.get("booking_id")
        if not raw:
            return None
        try:
            return UUID(raw)
        except ValueError:
            return None


@dataclass(frozen=True)
class UnusedEvent:
    """A well-formed event of a type the inbox does not use (`email.received`, `contact.*`, ...)."""

    event_type: str


class MalformedEventError(Exception):
    """A signed body that cannot be read: bad JSON or missing fields."""

    def __init__(self, violations: list[FieldViolation], event_type: str | None = None) -> None:
        self.violations = violations
        self.event_type = event_type
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


def _utc(value: datetime) -> datetime:
    # Resend sends offsets; a bare time is taken as UTC rather than the server's zone.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Bounce(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str | None = None
    subType: str | None = None  # noqa: N815 - the provider's key
    message: str | None = None


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    email_id: str = Field(min_length=1, max_length=200)
    sender: str | None = Field(default=None, alias="from")
    to: list[str] = Field(default_factory=list)
    subject: str | None = None
    created_at: datetime | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    bounce: _Bounce | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: object) -> object:
        if value is None:
            return {}
        if isinstance(value, list):
            pairs: dict[str, str] = {}
            for item in value:
                if not isinstance(item, dict) or "name" not in item:
                    raise ValueError("tags must be {name, value} objects")
                pairs[str(item["name"])] = "" if item.get("value") is None else str(item["value"])
            return pairs
        if isinstance(value, dict):
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
        return value

    @field_validator("created_at", mode="before")
    @classmethod
    def _lenient_time(cls, value: object) -> object:
        # The email's own time is informative only: Resend's `2024-11-22 23:41:11.89+00` form
        # is accepted, and anything unreadable is dropped rather than failing the event.
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None
        return value if isinstance(value, datetime) else None


class _EmailEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    created_at: datetime
    data: _Data


def parse_event(body: bytes) -> EmailEventFacts | UnusedEvent:
    """Read one event body; raises MalformedEventError naming the offending fields."""
    try:
        document: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEventError([FieldViolation(BODY_FIELD, f"not valid JSON: {exc}")]) from None
    if not isinstance(document, dict):
        raise MalformedEventError([FieldViolation(BODY_FIELD, "must be a JSON object")])
    event_type = document.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEventError([FieldViolation(f"{BODY_FIELD}.type", "required string")])
    status = EVENT_STATUS.get(event_type)
    if status is None:
        return UnusedEvent(event_type)
    try:
        event = _EmailEvent.model_validate(document)
    except ValidationError as exc:
        violations = [
            FieldViolation(".".join([BODY_FIELD, *(str(p) for p in error["loc"])]), error["msg"])
            for error in exc.errors()
        ]
        raise MalformedEventError(violations, event_type) from None
    data = event.data
    sender = parseaddr(data.sender)[1] or data.sender if data.sender else None
    recipients = [parseaddr(to)[1] or to for to in data.to]
    bounce = data.bounce
    return EmailEventFacts(
        event_type=event_type,
        status=status,
        occurred_at=_utc(event.created_at),
        provider_email_id=data.email_id,
        sender=sender,
        recipients=recipients,
        subject=data.subject,
        email_created_at=_utc(data.created_at) if data.created_at else None,
        tags=data.tags,
        bounce_type=bounce.type if bounce else None,
        bounce_description=(bounce.message or bounce.subType) if bounce else None,
    )
