"""Svix / Standard Webhooks signature verification over the exact raw body bytes.

The `standardwebhooks` library supplies the scheme (secret decoding after `whsec_`, the `v1`
HMAC-SHA256 over `id.timestamp.body`). Its `verify` reads the wall clock and raises assorted
exceptions on malformed headers, so freshness is judged here against the injected clock (which
lets tests check the official vector at its own time) and every failure is one domain error.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from standardwebhooks.webhooks import Webhook

from services.clock import Clock
from services.errors import DomainError, Reason

log = logging.getLogger(__name__)

TOLERANCE = timedelta(minutes=5)
# Resend sends the Svix names; the Standard Webhooks names are accepted as the same thing.
_HEADER_NAMES = {
    "id": ("svix-id", "webhook-id"),
    "timestamp": ("svix-timestamp", "webhook-timestamp"),
    "signature": ("svix-signature", "webhook-signature"),
}


@dataclass(frozen=True)
class SignedDelivery:
    message_id: str
    signed_at: datetime
    # The signature headers as received, kept with the stored event.
    headers: dict[str, str]


class InvalidSignatureError(DomainError):
    def __init__(self, why: str) -> None:
        super().__init__(Reason.INVALID_SIGNATURE, "webhook signature verification failed", {"why": why})
        self.why = why


def _header(headers: Mapping[str, str], key: str) -> str | None:
    for name in _HEADER_NAMES[key]:
        value = headers.get(name)
        if value:
            return value
    return None


class SignatureVerifier:
    """Accepts a body when any configured secret produced any of its `v1` signatures."""

    def __init__(self, secrets: Sequence[str], clock: Clock, tolerance: timedelta = TOLERANCE) -> None:
        self._webhooks = [Webhook(secret) for secret in secrets]
        self._clock = clock
        self._tolerance = tolerance
        if not self._webhooks:
            # Fail closed: without a secret nothing can be verified, so everything is refused.
            log.warning("no webhook secret configured: every webhook delivery will be refused")

    def verify(self, body: bytes, headers: Mapping[str, str]) -> SignedDelivery:
        lowered = {k.lower(): v for k, v in headers.items()}
        message_id = _header(lowered, "id")
        timestamp = _header(lowered, "timestamp")
        signature = _header(lowered, "signature")
        if not (message_id and timestamp and signature):
            raise InvalidSignatureError("missing_headers")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise InvalidSignatureError("bad_timestamp")
        signed_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
        if abs(self._clock.now() - signed_at) > self._tolerance:
            raise InvalidSignatureError("stale_timestamp")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSignatureError("body_not_utf8") from None
        offered = _v1_signatures(signature)
        for webhook in self._webhooks:
            expected = base64.b64decode(webhook.sign(message_id, signed_at, text).split(",", 1)[1])
            # Every offered entry is compared, in constant time, against every secret.
            if any(hmac.compare_digest(expected, candidate) for candidate in offered):
                return SignedDelivery(
                    message_id=message_id,
                    signed_at=signed_at,
                    headers={"svix-id": message_id, "svix-timestamp": timestamp, "svix-signature": signature},
                )
        raise InvalidSignatureError("no_match")


def _v1_signatures(header: str) -> list[bytes]:
    signatures: list[bytes] = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            signatures.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return signatures
