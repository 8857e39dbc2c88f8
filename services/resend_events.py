"""Reading Resend's event payloads: the shapes real deliveries have, not the ones we wish they had.

Real bodies carry `from` as `Name <addr>`, `to` as a list, `tags` either as an object or as a
list of `{name, value}`, and bounce details under camelCase keys. Unknown event types are
recognised here (and later stored and ignored), never an error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
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


# Widths of the columns these facts are stored in (services.storage.inbox_tables).
MAX_EVENT_TYPE = 100
MAX_ADDRESS = 320
MAX_EMAIL_TYPE = 64
MAX_BOUNCE_TYPE = 100


def _utc(value: datetime) -> datetime:
    # Resend sends offsets; a bare time is taken as UTC rather than the server's zone.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in_utc(value: datetime) -> datetime:
    """The instant in UTC; an offset that moves it past year 1 or 9999 is a ValueError."""
    try:
        return _utc(value)
    except OverflowError:
        raise ValueError("instant out of range (years 1 to 9999 in UTC)") from None


def _unstorable(value: object, path: str) -> Iterator[FieldViolation]:
    """Where the document holds what PostgreSQL's jsonb cannot: NUL characters, lone
    surrogates, and numbers too large for a float (Python reads them as infinity)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield FieldViolation(path, "must not contain NUL (U+0000) characters")
        elif not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                yield FieldViolation(path, "must be valid Unicode (no lone surrogates)")
    elif isinstance(value, float) and not math.isfinite(value):
        yield FieldViolation(path, "number out of range")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unstorable(key, path)
            yield from _unstorable(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable(item, f"{path}[{index}]")


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

    @field_validator("created_at", mode="after")
    @classmethod
    def _created_in_utc(cls, value: datetime | None) -> datetime | None:
        try:
            return _in_utc(value) if value is not None else None
        except ValueError:
            return None


class _EmailEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    created_at: datetime
    data: _Data

    @field_validator("created_at", mode="after")
    @classmethod
    def _occurred_in_utc(cls, value: datetime) -> datetime:
        return _in_utc(value)


def parse_event(body: bytes) -> EmailEventFacts | UnusedEvent:
    """Read one event body; raises MalformedEventError naming the offending fields."""
    try:
        document: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEventError([FieldViolation(BODY_FIELD, f"not valid JSON: {exc}")]) from None
    except RecursionError:
        raise MalformedEventError([FieldViolation(BODY_FIELD, "nested too deeply")]) from None
    if not isinstance(document, dict):
        raise MalformedEventError([FieldViolation(BODY_FIELD, "must be a JSON object")])
    unstorable = list(_unstorable(document, BODY_FIELD))
    if unstorable:
        raise MalformedEventError(unstorable)
    event_type = document.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEventError([FieldViolation(f"{BODY_FIELD}.type", "required string")])
    if len(event_type) > MAX_EVENT_TYPE:
        raise MalformedEventError(
            [FieldViolation(f"{BODY_FIELD}.type", f"at most {MAX_EVENT_TYPE} characters")]
        )
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
    too_long = [
        FieldViolation(f"{BODY_FIELD}.{path}", f"at most {limit} characters")
        for path, value, limit in (
            ("data.from", sender, MAX_ADDRESS),
            ("data.to[0]", recipients[0] if recipients else None, MAX_ADDRESS),
            ("data.tags.email_type", data.tags.get("email_type"), MAX_EMAIL_TYPE),
            ("data.bounce.type", bounce.type if bounce else None, MAX_BOUNCE_TYPE),
        )
        if value is not None and len(value) > limit
    ]
    if too_long:
        raise MalformedEventError(too_long, event_type)
    return EmailEventFacts(
        event_type=event_type,
        status=status,
        occurred_at=event.created_at,
        provider_email_id=data.email_id,
        sender=sender,
        recipients=recipients,
        subject=data.subject,
        email_created_at=data.created_at,
        tags=data.tags,
        bounce_type=bounce.type if bounce else None,
        bounce_description=(bounce.message or bounce.subType) if bounce else None,
    )
