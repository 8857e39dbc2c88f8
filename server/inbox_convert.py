"""Proto <-> domain for the inbox and webhooks: statuses, instants and records.

The enum mappings are derived from the one vocabulary in `services.email_status` by name, so a
status added there without a proto value fails at import, not in production.
"""

from __future__ import annotations

from datetime import UTC, datetime

from exodrive.v1 import booking_pb2, inbox_pb2, webhook_pb2
from google.protobuf import timestamp_pb2

from server.convert import date_to_proto, timestamp_to_proto
from services.email_status import EmailStatus, WebhookEventStatus
from services.errors import invalid_field
from services.inbox_model import Email, EmailEvent, LinkedBooking, WebhookEvent

EMAIL_STATUS_TO_PROTO: dict[EmailStatus, inbox_pb2.EmailStatus.ValueType] = {
    s: inbox_pb2.EmailStatus.Value(f"EMAIL_STATUS_{s.name}") for s in EmailStatus
}
EMAIL_STATUS_FROM_PROTO = {v: k for k, v in EMAIL_STATUS_TO_PROTO.items()}
WEBHOOK_STATUS_TO_PROTO: dict[WebhookEventStatus, webhook_pb2.WebhookEventStatus.ValueType] = {
    s: webhook_pb2.WebhookEventStatus.Value(f"WEBHOOK_EVENT_STATUS_{s.name}") for s in WebhookEventStatus
}
WEBHOOK_STATUS_FROM_PROTO = {v: k for k, v in WEBHOOK_STATUS_TO_PROTO.items()}


def parse_email_status(value: int, field: str) -> EmailStatus | None:
    if value == inbox_pb2.EMAIL_STATUS_UNSPECIFIED:
        return None
    status: EmailStatus | None = EMAIL_STATUS_FROM_PROTO.get(value)  # type: ignore[call-overload]
    if status is None:
        raise invalid_field(field, "is not an email status")
    return status


def parse_webhook_status(value: int, field: str) -> WebhookEventStatus | None:
    if value == webhook_pb2.WEBHOOK_EVENT_STATUS_UNSPECIFIED:
        return None
    status: WebhookEventStatus | None = WEBHOOK_STATUS_FROM_PROTO.get(value)  # type: ignore[call-overload]
    if status is None:
        raise invalid_field(field, "is not a webhook event status")
    return status


def parse_optional_time(value: timestamp_pb2.Timestamp, field: str, *, present: bool) -> datetime | None:
    if not present:
        return None
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise invalid_field(field, "is not a valid timestamp") from exc


def email_to_proto(email: Email) -> inbox_pb2.Email:
    return inbox_pb2.Email(
        email_id=str(email.id),
        provider_email_id=email.resend_email_id,
        sender=email.sender or "",
        recipients=email.recipients,
        subject=email.subject or "",
        email_type=email.email_type or "",
        status=EMAIL_STATUS_TO_PROTO[email.status],
        booking_id=str(email.booking_id) if email.booking_id else "",
        last_event_type=email.last_event_type,
        last_event_time=timestamp_to_proto(email.last_event_at),
        deliver_time=timestamp_to_proto(email.delivered_at),
        open_time=timestamp_to_proto(email.opened_at),
        click_time=timestamp_to_proto(email.clicked_at),
        bounce_type=email.bounce_type or "",
        bounce_description=email.bounce_description or "",
        complained=email.complained,
        tags=email.tags,
        create_time=timestamp_to_proto(email.sent_at),
        update_time=timestamp_to_proto(email.updated_at),
    )


def email_event_to_proto(event: EmailEvent) -> inbox_pb2.EmailEvent:
    return inbox_pb2.EmailEvent(
        webhook_event_id=str(event.webhook_event_id),
        event_type=event.event_type,
        status=EMAIL_STATUS_TO_PROTO[event.status],
        occur_time=timestamp_to_proto(event.occurred_at),
        receive_time=timestamp_to_proto(event.received_at),
    )


def linked_booking_to_proto(booking: LinkedBooking) -> inbox_pb2.LinkedBooking:
    status = booking_pb2.BookingStatus.Value(f"BOOKING_STATUS_{booking.status}")
    return inbox_pb2.LinkedBooking(
        booking_id=str(booking.id),
        car_id=str(booking.car_id),
        status=status,
        start_date=date_to_proto(booking.start_date),
        end_date=date_to_proto(booking.end_date),
    )


def webhook_event_to_proto(event: WebhookEvent) -> webhook_pb2.WebhookEvent:
    return webhook_pb2.WebhookEvent(
        event_id=str(event.id),
        provider=event.provider,
        provider_event_id=event.provider_event_id,
        event_type=event.event_type or "",
        receive_time=timestamp_to_proto(event.received_at),
        status=WEBHOOK_STATUS_TO_PROTO[event.status],
        attempts=event.attempts,
        last_error=event.last_error or "",
        sign_time=timestamp_to_proto(event.signed_at),
        process_time=timestamp_to_proto(event.processed_at),
        body=event.body,
    )
