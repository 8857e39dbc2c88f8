"""Opaque page tokens for keyset pagination (AIP-158).

A token carries the position after the last item of a page and a digest of the query it
belongs to, so a token replayed with other filters is refused rather than misread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping

from services.errors import DomainError, invalid_field


def query_digest(filters: Mapping[str, object]) -> str:
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode(position: Mapping[str, object], filters: Mapping[str, object]) -> str:
    body = {"p": dict(position), "q": query_digest(filters)}
    raw = json.dumps(body, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, filters: Mapping[str, object]) -> dict[str, object]:
    """The position a token names, or a VALIDATION_ERROR on `page_token`."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _bad_token() from exc
    if not isinstance(body, dict) or not isinstance(body.get("p"), dict):
        raise _bad_token()
    if body.get("q") != query_digest(filters):
        raise invalid_field("page_token", "belongs to a listing with other filters")
    position: dict[str, object] = body["p"]
    return position


def _bad_token() -> DomainError:
    return invalid_field("page_token", "is not a token returned by this listing")
