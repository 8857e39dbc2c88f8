"""Who is calling: the authenticated identity that services authorize against."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum


def hash_token(token: str) -> str:
    """A guest's booking access token as it is stored and compared: SHA-256 hex, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


class Role(StrEnum):
    ANONYMOUS = "anonymous"
    CUSTOMER = "customer"
    ADMIN = "admin"
    # An internal service: trusted like an admin, never a booking owner.
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    role: Role
    # The token's `sub` claim; None for anonymous callers.
    subject: str | None = None
    # A guest's booking access token (`x-booking-token`), when one was sent.
    booking_token: str | None = None

    @property
    def booking_token_hash(self) -> str | None:
        return None if self.booking_token is None else hash_token(self.booking_token)

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.ADMIN, Role.SERVICE)

    @property
    def is_authenticated(self) -> bool:
        return self.role is not Role.ANONYMOUS


ANONYMOUS = Principal(Role.ANONYMOUS)
