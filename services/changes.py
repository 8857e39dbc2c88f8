"""Change notification: services name what a committed write made stale, by cache tag.

The tags match the `{field}`-templated tags of the contract's cache policies, so a cache can drop
exactly the entries a write affected. Services call the notifier only after commit.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol
from uuid import UUID

FLEET_TAG = "fleet"


def fleet_tag() -> str:
    return FLEET_TAG


def car_tag(car_id: UUID | str) -> str:
    return f"car:{car_id}"


def car_bookings_tag(car_id: UUID | str) -> str:
    return f"car-bookings:{car_id}"


class ChangeNotifier(Protocol):
    async def invalidate(self, tags: Collection[str]) -> None: ...


class NullNotifier:
    """Notifies no one: for deployments without a cache."""

    async def invalidate(self, tags: Collection[str]) -> None:
        return None


class RecordingNotifier:
    """Keeps every batch of tags it is given, in order; tests assert on it."""

    def __init__(self) -> None:
        self.batches: list[frozenset[str]] = []

    async def invalidate(self, tags: Collection[str]) -> None:
        self.batches.append(frozenset(tags))

    @property
    def tags(self) -> set[str]:
        return {tag for batch in self.batches for tag in batch}
