"""Time as the services see it: an injectable clock, and "today" in the business timezone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def today(self) -> date:
        """The current calendar date in the business timezone."""
        ...


class SystemClock:
    def __init__(self, business_timezone: str) -> None:
        self._zone = ZoneInfo(business_timezone)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return datetime.now(self._zone).date()


class FixedClock:
    """A clock that stands still until moved; tests use it to cross hold periods without waiting."""

    def __init__(self, instant: datetime, business_timezone: str = "America/New_York") -> None:
        if instant.tzinfo is None:
            raise ValueError("instant must be timezone-aware")
        self._instant = instant.astimezone(UTC)
        self._zone = ZoneInfo(business_timezone)

    def now(self) -> datetime:
        return self._instant

    def today(self) -> date:
        return self._instant.astimezone(self._zone).date()

    def set(self, instant: datetime) -> None:
        self._instant = instant.astimezone(UTC)
