"""The one catalogue of failure reasons and the domain error that carries them.

Services raise `DomainError`; the server maps each reason to a gRPC code (server/errors.py)
and the gateway maps that code to an HTTP status. Reasons are stable UPPER_SNAKE_CASE names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Reason(StrEnum):
    VALIDATION_ERROR = "VALIDATION_ERROR"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    CAR_NOT_FOUND = "CAR_NOT_FOUND"
    BOOKING_NOT_FOUND = "BOOKING_NOT_FOUND"
    EMAIL_NOT_FOUND = "EMAIL_NOT_FOUND"
    WEBHOOK_EVENT_NOT_FOUND = "WEBHOOK_EVENT_NOT_FOUND"
    CAR_UNAVAILABLE = "CAR_UNAVAILABLE"
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
    INVALID_STATE_TRANSITION = "INVALID_STATE_TRANSITION"
    RATE_LIMITED = "RATE_LIMITED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request, named by its proto field path (e.g. `contact.email`)."""

    field: str
    description: str


@dataclass
class DomainError(Exception):
    """A failure the caller can act on. `metadata` repeats each dynamic value of `message`."""

    reason: Reason
    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    violations: Sequence[FieldViolation] = ()
    retry_after_seconds: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def invalid(*violations: FieldViolation) -> DomainError:
    """A VALIDATION_ERROR naming every invalid field."""
    names = ", ".join(v.field for v in violations)
    return DomainError(
        Reason.VALIDATION_ERROR,
        f"invalid request: {names}",
        metadata={"fields": names},
        violations=violations,
    )


def invalid_field(name: str, description: str) -> DomainError:
    return invalid(FieldViolation(name, description))
