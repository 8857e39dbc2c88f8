"""Signed Resend deliveries for tests and the benchmark: real payload shapes, real Svix signatures."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def event(
    event_type: str,
    email_id: str,
    at: datetime,
    *,
    sent_at: datetime | None = None,
    to: str = "Customer@Example.com",
    sender: str = "ExoDrive <bookings@exodrive.com>",
    subject: str = "Your booking EXO-1234ABCD",
    tags: Any = None,
    **data: Any,
) -> dict[str, Any]:
    """A Resend event as Resend sends it (`from` with a display name, `to` a list)."""
    body: dict[str, Any] = {
        "email_id": email_id,
        "from": sender,
        "to": [to],
        "subject": subject,
        "created_at": (sent_at or at).isoformat().replace("+00:00", "Z"),
        "tags": tags if tags is not None else {"email_type": "booking_confirmation"},
        **data,
    }
    return {"type": event_type, "created_at": at.isoformat().replace("+00:00", "Z"), "data": body}


def sign(body: bytes, signed_at: datetime, msg_id: str | None = None, secret: str = SECRET) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    signature = Webhook(secret).sign(msg_id, signed_at, body.decode())
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(signed_at.timestamp())),
        "svix-signature": signature,
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
