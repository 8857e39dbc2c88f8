"""What every call sends (trace id, credentials) and what it reads back."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from clients.errors import TRACE_ID_KEY

Resp = TypeVar("Resp")

BOOKING_TOKEN_KEY = "x-booking-token"  # noqa: S105 - a metadata key, not a secret


def new_trace_id() -> str:
    return uuid.uuid4().hex


def outgoing_metadata(
    *,
    trace_id: str,
    token: str | None,
    booking_token: str | None,
    extra: Mapping[str, str] | None,
) -> Sequence[tuple[str, str]]:
    pairs = [(TRACE_ID_KEY, trace_id)]
    if token:
        pairs.append(("authorization", f"Bearer {token}"))
    if booking_token:
        pairs.append((BOOKING_TOKEN_KEY, booking_token))
    if extra:
        pairs.extend((key.lower(), value) for key, value in extra.items())
    return pairs


def metadata_pairs(metadata: Iterable[object] | None) -> list[tuple[str, str | bytes]]:
    """(key, value) pairs of any gRPC metadata object (the stubs type them unevenly)."""
    pairs: list[tuple[str, str | bytes]] = []
    for item in metadata or ():
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            value = item[1]
            if isinstance(value, str | bytes):
                pairs.append((item[0], value))
    return pairs


def text_metadata(*groups: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """Text entries of initial and trailing metadata; binary (`-bin`) entries are left out."""
    merged: dict[str, str] = {}
    for group in groups:
        for key, value in group or ():
            if isinstance(value, str):
                merged[key] = value
    return merged


@dataclass(frozen=True)
class Reply(Generic[Resp]):
    """A response with the metadata it came with (trace id, cache and rate-limit headers)."""

    response: Resp
    trace_id: str
    metadata: Mapping[str, str] = field(default_factory=dict)
