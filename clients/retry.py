"""When a failed call is tried again: UNAVAILABLE only, idempotent methods only, with backoff."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from clients.call_metadata import metadata_pairs
from clients.errors import ExoDriveError, error_from_status

# Safe to repeat: reads, and writes the server deduplicates (CreateBooking by request_id, a
# webhook by its provider event id, a replay by design).
IDEMPOTENT_METHODS = frozenset(
    {
        "ListCars",
        "GetCar",
        "GetCarAvailability",
        "QuotePrice",
        "CreateBooking",
        "GetBooking",
        "ListBookings",
        "ListEmails",
        "GetEmail",
        "GetEmailStats",
        "HandleResendEvent",
        "ListWebhookEvents",
        "ReplayWebhookEvent",
    }
)


class FailedCall(Protocol):
    """What the sync and the asyncio stubs both report of a failed call."""

    def code(self) -> grpc.StatusCode: ...
    def details(self) -> str | None: ...
    def trailing_metadata(self) -> Iterable[object] | None: ...
    def initial_metadata(self) -> Iterable[object] | None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; a server's RetryInfo delay is a floor."""

    max_attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0
    retryable: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def should_retry(self, method: str, code: grpc.StatusCode, attempt: int) -> bool:
        """`attempt` counts from 1 for the call that just failed."""
        return attempt < self.max_attempts and code in self.retryable and method in IDEMPOTENT_METHODS

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        delay = self.rng.uniform(0, ceiling)
        return max(delay, retry_after or 0.0)

    def after_failure(
        self, method: str, failure: FailedCall, attempt: int, deadline: float, trace_id: str
    ) -> tuple[ExoDriveError, float | None]:
        """The typed error of a failed attempt, and how long to wait before the next one (None:
        give up, because the failure is final or the wait would overrun the call's deadline)."""
        error = error_from_status(
            failure.code(),
            failure.details(),
            metadata_pairs(failure.trailing_metadata()),
            metadata_pairs(failure.initial_metadata()),
        )
        error.trace_id = error.trace_id or trace_id
        if not self.should_retry(method, failure.code(), attempt):
            return error, None
        delay = self.backoff(attempt, error.retry_after)
        return error, (delay if time.monotonic() + delay < deadline else None)


NO_RETRY = RetryPolicy(max_attempts=1)
