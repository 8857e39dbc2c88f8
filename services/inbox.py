"""The admin inbox: every email sent, what became of it, and delivery statistics. Staff only
(and row level security says the same in the database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from uuid import UUID

from services.errors import DomainError, Reason, invalid_field
from services.fleet import page_size_of
from services.inbox_model import Cursor, EmailDetail, EmailFilter, EmailPage, EmailStats
from services.principal import Principal
from services.storage.inbox_unit_of_work import InboxUnitOfWorkFactory

MAX_SEARCH_LENGTH = 200
MAX_EMAIL_TYPE_LENGTH = 64


def _require_staff(principal: Principal) -> None:
    if not principal.is_authenticated:
        raise DomainError(Reason.UNAUTHENTICATED, "sign in as an admin to read the inbox")
    if not principal.is_staff:
        raise DomainError(Reason.PERMISSION_DENIED, "only admins may read the inbox")


def email_not_found(email_id: UUID) -> DomainError:
    return DomainError(Reason.EMAIL_NOT_FOUND, f"email {email_id} not found", {"email_id": str(email_id)})


def check_range(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start >= end:
        raise invalid_field("end_time", "must be after start_time")


def normalized(where: EmailFilter) -> EmailFilter:
    """The filter as the repository applies it; refuses over-long text."""
    check_range(where.sent_from, where.sent_before)
    search = (where.search or "").strip()
    if len(search) > MAX_SEARCH_LENGTH:
        raise invalid_field("search", f"at most {MAX_SEARCH_LENGTH} characters")
    if where.email_type is not None and len(where.email_type) > MAX_EMAIL_TYPE_LENGTH:
        raise invalid_field("email_type", f"at most {MAX_EMAIL_TYPE_LENGTH} characters")
    recipient = where.recipient.strip().lower() if where.recipient else None
    return replace(where, search=search or None, recipient=recipient or None)


class InboxService:
    def __init__(self, uow: InboxUnitOfWorkFactory) -> None:
        self._uow = uow

    async def list_emails(
        self, principal: Principal, where: EmailFilter, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[EmailPage, str]:
        """A page of emails, newest sent first, with the total count of matches and the next token."""
        _require_staff(principal)
        limit = page_size_of(page_size)
        where = normalized(where)
        filters: dict[str, object] = {
            "status": where.status,
            "type": where.email_type,
            "to": where.recipient,
            "booking": where.booking_id,
            "from": where.sent_from,
            "before": where.sent_before,
            "q": where.search,
        }
        after = Cursor.from_token(page_token, filters) if page_token else None
        async with self._uow(principal) as uow:
            page = await uow.inbox.page(where, after, limit)
        token = page.next_cursor.token(filters) if page.next_cursor is not None else ""
        return page, token

    async def get_email(self, principal: Principal, email_id: UUID) -> EmailDetail:
        _require_staff(principal)
        async with self._uow(principal) as uow:
            email = await uow.inbox.get(email_id)
            if email is None:
                raise email_not_found(email_id)
            events = await uow.inbox.events(email_id)
            booking = await uow.inbox.linked_booking(email.booking_id) if email.booking_id else None
        return EmailDetail(email, events, booking)

    async def stats(self, principal: Principal, start: datetime | None, end: datetime | None) -> EmailStats:
        _require_staff(principal)
        check_range(start, end)
        async with self._uow(principal) as uow:
            return await uow.inbox.stats(start, end)
