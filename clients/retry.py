"""When a failed call is tried again: UNAVAILABLE only, idempotent methods only, with backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import grpc

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


NO_RETRY = RetryPolicy(max_attempts=1)
