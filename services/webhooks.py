"""Resend webhooks: verify the signature, store the raw delivery once, apply it to the inbox.

Storing and applying happen in one transaction, so a delivery is either fully recorded or not at
all (and the provider retries). A redelivery of a stored provider event id changes nothing. Bad
signatures store nothing and are only counted. Verification is its own step (`verify_resend`), so
the server can prove the sender before the delivery spends the provider's rate-limit budget.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from services.email_status import RESEND_PROVIDER, WebhookEventStatus
from services.errors import DomainError, Reason, invalid, invalid_field
from services.fleet import page_size_of
from services.inbox_model import Cursor, WebhookEvent, WebhookEventFilter
from services.principal import Principal, Role
from services.resend_events import EmailEventFacts, MalformedEventError, UnusedEvent, parse_event
from services.storage.inbox_unit_of_work import InboxUnitOfWork, InboxUnitOfWorkFactory
from services.webhook_outcomes import IgnoredOutcomes, Outcome, WebhookOutcomes
from services.webhook_signature import InvalidSignatureError, SignatureVerifier, SignedDelivery

log = logging.getLogger(__name__)

# Deliveries are written with the service role: row level security admits only staff.
PROVIDER_PRINCIPAL = Principal(Role.SERVICE, subject=f"webhook:{RESEND_PROVIDER}")


@dataclass(frozen=True)
class WebhookReceipt:
    event_id: UUID
    duplicate: bool
    status: WebhookEventStatus


@dataclass(frozen=True)
class _Reading:
    """What the body says: facts to apply, or why it is not applied."""

    status: WebhookEventStatus
    event_type: str | None
    facts: EmailEventFacts | None = None
    error: MalformedEventError | None = None


def _read(body: bytes) -> _Reading:
    try:
        parsed = parse_event(body)
    except MalformedEventError as exc:
        return _Reading(WebhookEventStatus.FAILED, exc.event_type, error=exc)
    if isinstance(parsed, UnusedEvent):
        return _Reading(WebhookEventStatus.IGNORED, parsed.event_type)
    return _Reading(WebhookEventStatus.PROCESSED, parsed.event_type, facts=parsed)


async def _apply(uow: InboxUnitOfWork, reading: _Reading, event_id: UUID, body: bytes) -> None:
    if reading.facts is not None:
        document: Any = json.loads(body)
        await uow.inbox.apply(reading.facts, event_id, document)


_OUTCOME = {
    WebhookEventStatus.PROCESSED: Outcome.STORED,
    WebhookEventStatus.FAILED: Outcome.FAILED,
    WebhookEventStatus.IGNORED: Outcome.IGNORED,
}


def _require_staff(principal: Principal) -> None:
    if not principal.is_authenticated:
        raise DomainError(Reason.UNAUTHENTICATED, "sign in as an admin to read webhook events")
    if not principal.is_staff:
        raise DomainError(Reason.PERMISSION_DENIED, "only admins may read webhook events")


def event_not_found(event_id: UUID) -> DomainError:
    return DomainError(
        Reason.WEBHOOK_EVENT_NOT_FOUND, f"webhook event {event_id} not found", {"event_id": str(event_id)}
    )


class WebhookService:
    def __init__(
        self,
        uow: InboxUnitOfWorkFactory,
        verifier: SignatureVerifier,
        outcomes: WebhookOutcomes | None = None,
    ) -> None:
        self._uow = uow
        self._verifier = verifier
        self._outcomes = outcomes if outcomes is not None else IgnoredOutcomes()
        # Refused deliveries by cause; nothing else of them is kept. Metrics read it.
        self.rejections: Counter[str] = Counter()

    def verify_resend(self, body: bytes, headers: Mapping[str, str]) -> SignedDelivery:
        """Proves a delivery is Resend's (the server does it before the delivery may spend the
        provider's rate-limit budget); a refusal is counted and raised as INVALID_SIGNATURE."""
        try:
            return self._verifier.verify(body, headers)
        except InvalidSignatureError as exc:
            self.rejections[exc.why] += 1
            self._outcomes.refused(RESEND_PROVIDER, exc.why)
            log.warning("webhook refused", extra={"provider": RESEND_PROVIDER, "why": exc.why})
            raise

    async def handle_resend(self, body: bytes, headers: Mapping[str, str]) -> WebhookReceipt:
        return await self.ingest_resend(body, self.verify_resend(body, headers))

    async def ingest_resend(self, body: bytes, delivery: SignedDelivery) -> WebhookReceipt:
        """Stores and applies a delivery `verify_resend` accepted."""
        reading = _read(body)
        error_text = str(reading.error) if reading.error else None
        async with self._uow(PROVIDER_PRINCIPAL) as uow:
            event_id = await uow.webhook_events.add(
                provider=RESEND_PROVIDER,
                provider_event_id=delivery.message_id,
                event_type=reading.event_type,
                body=body,
                headers=delivery.headers,
                signed_at=delivery.signed_at,
                status=reading.status,
                last_error=error_text,
            )
            if event_id is None:
                stored = await uow.webhook_events.by_provider_id(RESEND_PROVIDER, delivery.message_id)
                assert stored is not None  # the conflicting row is committed and visible
                self._outcomes.ingested(RESEND_PROVIDER, Outcome.DUPLICATE)
                return WebhookReceipt(stored.id, duplicate=True, status=stored.status)
            await _apply(uow, reading, event_id, body)
            await uow.commit()
        self._outcomes.ingested(RESEND_PROVIDER, _OUTCOME[reading.status])
        if reading.error is not None:
            # Stored (and committed) as failed for admins to see; the provider gets a 400.
            error = invalid(*reading.error.violations)
            raise DomainError(
                error.reason,
                f"webhook event {event_id} is malformed",
                {**error.metadata, "event_id": str(event_id)},
                error.violations,
            )
        log.info(
            "webhook stored",
            extra={"event_id": str(event_id), "event_type": reading.event_type, "status": reading.status},
        )
        return WebhookReceipt(event_id, duplicate=False, status=reading.status)

    async def list_events(
        self,
        principal: Principal,
        where: WebhookEventFilter,
        *,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[WebhookEvent], str]:
        _require_staff(principal)
        limit = page_size_of(page_size)
        if (
            where.received_from is not None
            and where.received_before is not None
            and where.received_from >= where.received_before
        ):
            raise invalid_field("end_time", "must be after start_time")
        filters: dict[str, object] = {
            "provider": where.provider,
            "status": where.status,
            "from": where.received_from,
            "before": where.received_before,
        }
        after = Cursor.from_token(page_token, filters) if page_token else None
        async with self._uow(principal) as uow:
            page = await uow.webhook_events.page(where, after, limit)
        token = ""
        if page.next_cursor is not None:
            token = page.next_cursor.token(filters)
        return page.events, token

    async def replay(self, principal: Principal, event_id: UUID) -> WebhookEvent:
        """Apply a stored event again from its stored bytes; applying twice changes nothing more.

        The signature was verified when the event arrived; its timestamp is not judged again.
        """
        _require_staff(principal)
        async with self._uow(principal) as uow:
            stored = await uow.webhook_events.get(event_id, for_update=True)
            if stored is None:
                raise event_not_found(event_id)
            reading = _read(stored.body)
            await _apply(uow, reading, event_id, stored.body)
            error_text = str(reading.error) if reading.error else None
            updated = await uow.webhook_events.record_attempt(
                event_id, reading.status, reading.event_type, error_text
            )
            await uow.commit()
        log.info("webhook replayed", extra={"event_id": str(event_id), "status": reading.status})
        return updated
