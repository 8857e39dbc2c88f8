"""The admin inbox: exact filter and search results on a seeded set, pagination, timeline, stats."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import inbox_fixtures
import pytest
from inbox_fixtures import insert_booking
from resend_samples import encode, event, now, sign
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.email_status import EmailStatus
from services.errors import DomainError, Reason
from services.inbox import InboxService
from services.inbox_model import EmailFilter
from services.principal import Principal, Role
from services.storage import inbox as inbox_storage
from services.webhooks import WebhookService

# Fixtures shared with the other inbox tests.
engine = inbox_fixtures.engine
uow = inbox_fixtures.uow
webhooks = inbox_fixtures.webhooks
inbox = inbox_fixtures.inbox

ADMIN = Principal(Role.ADMIN, "admin-1")
SERVICE = Principal(Role.SERVICE, "reports")
# The seeded emails were sent in January 2020; nothing else in the session database was.
JAN = datetime(2020, 1, 1, tzinfo=UTC)
FEB = datetime(2020, 2, 1, tzinfo=UTC)
SEEDED = EmailFilter(sent_from=JAN, sent_before=FEB)

# name -> (recipient, subject, email type, events after email.sent)
SEED: dict[str, tuple[str, str, str, list[str]]] = {
    "a": ("alice@example.com", "Booking 100% confirmed", "booking_confirmation", ["email.delivered"]),
    "b": (
        "bob_smith@example.com",
        "Receipt for O'Brien",
        "payment_receipt",
        ["email.delivered", "email.opened"],
    ),
    "c": ("carol@example.com", 'Path C:\\cars\\new "quoted"', "booking_cancellation", ["email.bounced"]),
    "d": ("dave@example.com", "Plain subject", "booking_confirmation", []),
    "e": (
        "bobXsmith@example.com",
        "100 confirmed",
        "booking_confirmation",
        ["email.delivered", "email.complained"],
    ),
    "f": ("frank@example.com", "Contract to sign", "contract", ["email.failed"]),
}


@pytest.fixture(scope="module")
async def seeded(webhooks: WebhookService, engine: AsyncEngine) -> dict[str, uuid.UUID]:
    """Name -> email id; `a` was sent first, `f` last. `d` links a booking."""
    booking_id = await insert_booking(engine)
    ids: dict[str, uuid.UUID] = {}
    for index, (name, (to, subject, email_type, later)) in enumerate(SEED.items()):
        resend_id = f"seed-{name}-{uuid.uuid4()}"
        sent_at = JAN + timedelta(days=index + 1)
        tags = {"email_type": email_type, **({"booking_id": str(booking_id)} if name == "d" else {})}
        for step, event_type in enumerate(["email.sent", *later]):
            payload = event(
                event_type,
                resend_id,
                sent_at + timedelta(minutes=step),
                sent_at=sent_at,
                to=to,
                subject=subject,
                tags=tags,
            )
            body = encode(payload)
            await webhooks.handle_resend(body, sign(body, now()))
        async with webhooks._uow(ADMIN) as u:
            stored = await u.inbox.by_provider_id(resend_id)
        assert stored is not None
        ids[name] = stored.id
    return ids


async def names(inbox: InboxService, seeded: dict[str, uuid.UUID], where: EmailFilter) -> list[str]:
    page, token = await inbox.list_emails(ADMIN, where, page_size=100)
    assert token == ""
    by_id = {v: k for k, v in seeded.items()}
    listed = [by_id[e.id] for e in page.emails]
    assert page.total == len(listed)
    return listed


def seeded_with(**filters: object) -> EmailFilter:
    return EmailFilter(sent_from=JAN, sent_before=FEB, **filters)  # type: ignore[arg-type]


async def test_newest_first(inbox: InboxService, seeded: dict[str, uuid.UUID]) -> None:
    assert await names(inbox, seeded, SEEDED) == ["f", "e", "d", "c", "b", "a"]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("100%", ["a"]),
        ("%", ["a"]),
        ("bob_smith", ["b"]),
        ("_", ["b"]),
        ("o'brien", ["b"]),
        ("\\cars\\", ["c"]),
        ('"quoted"', ["c"]),
        ("\\", ["c"]),
        ("EXODRIVE.COM", ["f", "e", "d", "c", "b", "a"]),
        ("  Contract ", ["f"]),
        ("'; DROP TABLE inbox_emails; --", []),
        ("nothing like this", []),
    ],
)
async def test_search_is_literal_and_case_insensitive(
    inbox: InboxService, seeded: dict[str, uuid.UUID], search: str, expected: list[str]
) -> None:
    assert await names(inbox, seeded, seeded_with(search=search)) == expected


async def test_filters(inbox: InboxService, seeded: dict[str, uuid.UUID]) -> None:
    assert await names(inbox, seeded, seeded_with(status=EmailStatus.BOUNCED)) == ["c"]
    assert await names(inbox, seeded, seeded_with(status=EmailStatus.COMPLAINED)) == ["e"]
    assert await names(inbox, seeded, seeded_with(status=EmailStatus.DELIVERED)) == ["a"]
    assert await names(inbox, seeded, seeded_with(email_type="booking_confirmation")) == ["e", "d", "a"]
    assert await names(inbox, seeded, seeded_with(recipient=" ALICE@example.com ")) == ["a"]
    detail = await inbox.get_email(ADMIN, seeded["d"])
    assert detail.email.booking_id is not None
    assert await names(inbox, seeded, seeded_with(booking_id=detail.email.booking_id)) == ["d"]
    window = EmailFilter(sent_from=JAN + timedelta(days=2), sent_before=JAN + timedelta(days=4))
    assert await names(inbox, seeded, window) == ["c", "b"]
    both = seeded_with(email_type="booking_confirmation", search="100")
    assert await names(inbox, seeded, both) == ["e", "a"]


async def test_pages_have_no_gaps_or_repeats_and_a_total(
    inbox: InboxService, seeded: dict[str, uuid.UUID]
) -> None:
    by_id = {v: k for k, v in seeded.items()}
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page, token = await inbox.list_emails(SERVICE, SEEDED, page_size=4, page_token=token)
        assert page.total == 6
        seen.extend(by_id[e.id] for e in page.emails)
        pages += 1
        if not token:
            break
    assert pages == 2
    assert seen == ["f", "e", "d", "c", "b", "a"]


async def test_get_email_has_its_timeline(inbox: InboxService, seeded: dict[str, uuid.UUID]) -> None:
    detail = await inbox.get_email(ADMIN, seeded["b"])
    assert [e.event_type for e in detail.events] == ["email.sent", "email.delivered", "email.opened"]
    assert [e.status for e in detail.events] == [EmailStatus.SENT, EmailStatus.DELIVERED, EmailStatus.OPENED]
    assert detail.email.status is EmailStatus.OPENED
    assert detail.email.sender == "bookings@exodrive.com"
    assert detail.email.recipients == ["bob_smith@example.com"]
    assert detail.booking is None
    linked = await inbox.get_email(ADMIN, seeded["d"])
    assert linked.booking is not None
    assert (linked.booking.start_date.isoformat(), linked.booking.end_date.isoformat()) == (
        "2031-05-01",
        "2031-05-03",
    )


async def test_unknown_email_is_not_found(inbox: InboxService) -> None:
    with pytest.raises(DomainError) as caught:
        await inbox.get_email(ADMIN, uuid.uuid4())
    assert caught.value.reason is Reason.EMAIL_NOT_FOUND


async def test_stats_count_statuses_types_and_rates(
    inbox: InboxService, seeded: dict[str, uuid.UUID]
) -> None:
    stats = await inbox.stats(ADMIN, JAN, FEB)
    assert stats.total == 6
    assert stats.by_status == {
        EmailStatus.DELIVERED: 1,
        EmailStatus.OPENED: 1,
        EmailStatus.BOUNCED: 1,
        EmailStatus.SENT: 1,
        EmailStatus.COMPLAINED: 1,
        EmailStatus.FAILED: 1,
    }
    assert stats.by_type == {
        "booking_confirmation": 3,
        "payment_receipt": 1,
        "booking_cancellation": 1,
        "contract": 1,
    }
    assert (stats.delivered, stats.opened, stats.bounced, stats.complained) == (3, 1, 1, 1)
    assert stats.rate(stats.delivered, stats.total) == 0.5
    empty = await inbox.stats(ADMIN, datetime(1999, 1, 1, tzinfo=UTC), datetime(1999, 1, 2, tzinfo=UTC))
    assert (empty.total, empty.by_status, empty.rate(empty.opened, empty.delivered)) == (0, {}, 0.0)


@pytest.mark.parametrize(
    ("principal", "reason"),
    [
        (Principal(Role.ANONYMOUS), Reason.UNAUTHENTICATED),
        (Principal(Role.CUSTOMER, "c1"), Reason.PERMISSION_DENIED),
    ],
)
async def test_only_staff_read_the_inbox(inbox: InboxService, principal: Principal, reason: Reason) -> None:
    for call in (
        inbox.list_emails(principal, EmailFilter()),
        inbox.get_email(principal, uuid.uuid4()),
        inbox.stats(principal, None, None),
    ):
        with pytest.raises(DomainError) as caught:
            await call
        assert caught.value.reason is reason


@pytest.mark.parametrize(
    ("kwargs", "where", "field"),
    [
        ({"page_size": 101}, EmailFilter(), "page_size"),
        ({"page_size": -1}, EmailFilter(), "page_size"),
        ({"page_token": "not-a-token"}, EmailFilter(), "page_token"),
        ({}, EmailFilter(search="x" * 201), "search"),
        ({}, EmailFilter(email_type="t" * 65), "email_type"),
        ({}, EmailFilter(sent_from=FEB, sent_before=JAN), "end_time"),
    ],
)
async def test_invalid_listing_names_the_field(
    inbox: InboxService, kwargs: dict[str, object], where: EmailFilter, field: str
) -> None:
    with pytest.raises(DomainError) as caught:
        await inbox.list_emails(ADMIN, where, **kwargs)  # type: ignore[arg-type]
    assert caught.value.reason is Reason.VALIDATION_ERROR
    assert caught.value.violations[0].field == field


async def test_page_token_of_other_filters_is_refused(
    inbox: InboxService, seeded: dict[str, uuid.UUID]
) -> None:
    _, token = await inbox.list_emails(ADMIN, SEEDED, page_size=2)
    assert token
    with pytest.raises(DomainError) as caught:
        await inbox.list_emails(ADMIN, seeded_with(status=EmailStatus.SENT), page_size=2, page_token=token)
    assert caught.value.violations[0].field == "page_token"


async def test_the_total_is_counted_up_to_a_cap(
    inbox: InboxService, seeded: dict[str, uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_storage, "MAX_COUNTED", 4)
    page, _ = await inbox.list_emails(ADMIN, SEEDED, page_size=2)
    assert (page.total, page.capped) == (4, True)
    assert len(page.emails) == 2
    page, _ = await inbox.list_emails(ADMIN, seeded_with(email_type="booking_confirmation"), page_size=2)
    assert (page.total, page.capped) == (3, False)


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("exo", ["f", "e", "d", "c", "b", "a"]),
        ("ex", ["f", "e", "d", "c", "b", "a"]),
        ("Bob", ["e", "b"]),
        ("b", ["f", "e", "d", "c", "b", "a"]),
    ],
)
async def test_short_and_long_searches_agree_with_ilike(
    inbox: InboxService, seeded: dict[str, uuid.UUID], search: str, expected: list[str]
) -> None:
    """Under three characters no trigram exists and the ILIKE alone decides; from three on the
    index narrows first. Both give the same rows."""
    assert await names(inbox, seeded, seeded_with(search=search)) == expected


@pytest.mark.parametrize("max_candidates", [inbox_storage.MAX_CANDIDATES, 2])
async def test_sparse_and_dense_searches_give_the_same_rows(
    inbox: InboxService,
    seeded: dict[str, uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
    max_candidates: int,
) -> None:
    """Few trigram candidates are read by id; more than MAX_CANDIDATES fall back to the listing
    index with the ILIKE alone. Either way the rows are the same."""
    monkeypatch.setattr(inbox_storage, "MAX_CANDIDATES", max_candidates)
    assert await names(inbox, seeded, seeded_with(search="confirmed")) == ["e", "a"]
    assert await names(inbox, seeded, seeded_with(search="EXODRIVE.COM")) == ["f", "e", "d", "c", "b", "a"]
    assert await names(inbox, seeded, seeded_with(search="zzz%_")) == []


@pytest.mark.parametrize(
    ("role", "sees"), [("admin", True), ("service", True), ("customer", False), ("", False)]
)
async def test_search_candidates_are_for_staff_only(
    engine: AsyncEngine, seeded: dict[str, uuid.UUID], role: str, sees: bool
) -> None:
    """The SECURITY DEFINER function runs past row level security, so it checks the caller
    itself, exactly as the policy does; it is called here as the application role."""
    async with engine.connect() as db:
        await db.execute(text("SET LOCAL ROLE exodrive_app"))
        await db.execute(text("SELECT set_config('exodrive.role', :role, true)"), {"role": role})
        rows = await db.execute(text("SELECT inbox_search_candidates('Contract to sign', 10)"))
        found = {row[0] for row in rows}
    assert (seeded["f"] in found) is sees
    if not sees:
        assert found == set()
