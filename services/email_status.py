"""The one status vocabulary of inbox emails, shared by the webhook writer and the inbox reader.

The database CHECK constraint, the proto enum mapping and the webhook event mapping are all built
from `EmailStatus`, so a status the writer stores is always one the reader can filter on.
"""

from __future__ import annotations

from enum import StrEnum


class EmailStatus(StrEnum):
    SENT = "sent"
    DELIVERY_DELAYED = "delivery_delayed"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    FAILED = "failed"


# Resend's real email event types (the earlier system invented `email.delivery_failed`).
EVENT_STATUS: dict[str, EmailStatus] = {
    "email.sent": EmailStatus.SENT,
    "email.delivery_delayed": EmailStatus.DELIVERY_DELAYED,
    "email.delivered": EmailStatus.DELIVERED,
    "email.opened": EmailStatus.OPENED,
    "email.clicked": EmailStatus.CLICKED,
    "email.bounced": EmailStatus.BOUNCED,
    "email.complained": EmailStatus.COMPLAINED,
    "email.failed": EmailStatus.FAILED,
}

# Tie-break between events with the same `created_at`: a total order, so the final status does
# not depend on arrival order. Bad outcomes outrank delivery, which outranks sending.
PRECEDENCE: dict[EmailStatus, int] = {
    EmailStatus.SENT: 1,
    EmailStatus.DELIVERY_DELAYED: 2,
    EmailStatus.DELIVERED: 3,
    EmailStatus.OPENED: 4,
    EmailStatus.CLICKED: 5,
    EmailStatus.FAILED: 6,
    EmailStatus.BOUNCED: 7,
    EmailStatus.COMPLAINED: 8,
}

assert set(PRECEDENCE) == set(EmailStatus) == set(EVENT_STATUS.values())


class WebhookEventStatus(StrEnum):
    """What became of a stored webhook delivery."""

    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


RESEND_PROVIDER = "resend"
