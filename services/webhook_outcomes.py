"""What the webhook service reports about each delivery, for metrics, without knowing how they
are kept (the server implements this port with Prometheus counters)."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    """What became of a delivery whose signature verified."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    IGNORED = "ignored"


class WebhookOutcomes(Protocol):
    def refused(self, provider: str, why: str) -> None:
        """A delivery refused before anything was stored (bad, missing or stale signature)."""

    def ingested(self, provider: str, outcome: Outcome) -> None:
        """A verified delivery and what became of it."""


class IgnoredOutcomes:
    """The default: report nothing."""

    def refused(self, provider: str, why: str) -> None:
        pass

    def ingested(self, provider: str, outcome: Outcome) -> None:
        pass
