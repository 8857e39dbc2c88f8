"""Resend deliveries stored once and applied to the inbox in any order, as the application role."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import asdict
from datetime import timedelta

import inbox_fixtures
import pytest
from inbox_fixtures import insert_booking
from resend_samples import encode, event, now, sign
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.email_status import EmailStatus, WebhookEventStatus
from services.errors import DomainError, Reason
from services.inbox import InboxService
from services.inbox_model import EmailFilter, WebhookEventFilter
from services.principal import Principal, Role
from services.webhooks import WebhookService

# Fixtures shared with the other inbox tests.
engine = inbox_fixtures.engine
uow = inbox_fixtures.uow
webhooks = inbox_fixtures.webhooks
inbox = inbox_fixtures.inbox

ADMIN = Principal(Role.ADMIN, "admin-1")
CUSTOMER = Principal(Role.CUSTOMER, "customer-1")


async def deliver(webhooks: WebhookService, payload: dict[str, object], msg_id: str | None = None):  # type: ignore[no-untyped-def]
    body = encode(payload)
    return await webhooks.handle_resend(body, sign(body, now(), msg_id))


async def email_of(inbox: InboxService, resend_id: str):  # type: ignore[no-untyped-def]
    async with inbox._uow(ADMIN) as uow:
        return await uow.inbox.by_provider_id(resend_id)


async def count(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as db:
        return int((await db.execute(text(sql), params)).scalar_one())


LIFECYCLE = [
    ("email.sent", EmailStatus.SENT),
    ("email.delivery_delayed", EmailStatus.DELIVERY_DELAYED),
    ("email.delivered", EmailStatus.DELIVERED),
    ("email.opened", EmailStatus.OPENED),
    ("email.clicked", EmailStatus.CLICKED),
    ("email.bounced", EmailStatus.BOUNCED),
    ("email.complained", EmailStatus.COMPLAINED),
    ("email.failed", EmailStatus.FAILED),
]


@pytest.mark.parametrize(("event_type", "status"), LIFECYCLE)
async def test_each_event_type_sets_its_status(
    webhooks: WebhookService, inbox: InboxService, event_type: str, status: EmailStatus
) -> None:
    resend_id = str(uuid.uuid4())
    t0 = now() - timedelta(minutes=10)
    await deliver(webhooks, event("email.sent", resend_id, t0))
    extra = {"bounce": {"type": "Permanent", "subType": "Suppressed", "message": "mailbox full"}}
    receipt = await deliver(
        webhooks, event(event_type, resend_id, t0 + timedelta(seconds=5), sent_at=t0, **extra)
    )
    assert receipt.status is WebhookEventStatus.PROCESSED
    assert not receipt.duplicate
    email = await email_of(inbox, resend_id)
    assert email.status is status
    assert email.last_event_type == event_type
    assert email.sender == "bookings@exodrive.com"
    assert email.recipients == ["Customer@Example.com"]
    assert email.email_type == "booking_confirmation"
    assert email.sent_at == t0
    t1 = t0 + timedelta(seconds=5)
    assert email.delivered_at == (t1 if status is EmailStatus.DELIVERED else None)
    assert email.opened_at == (t1 if status is EmailStatus.OPENED else None)
    assert email.clicked_at == (t1 if status is EmailStatus.CLICKED else None)
    assert email.complained is (status is EmailStatus.COMPLAINED)
    assert email.bounce_type == "Permanent"
    assert email.bounce_description == "mailbox full"


async def test_same_delivery_ten_times_concurrently_stores_one_event(
    webhooks: WebhookService, engine: AsyncEngine
) -> None:
    resend_id = str(uuid.uuid4())
    body = encode(event("email.delivered", resend_id, now()))
    headers = sign(body, now())
    receipts = await asyncio.gather(*(webhooks.handle_resend(body, headers) for _ in range(10)))
    assert len({r.event_id for r in receipts}) == 1
    assert sorted(r.duplicate for r in receipts) == [False] + [True] * 9
    assert (
        await count(
            engine, "SELECT count(*) FROM webhook_events WHERE provider_event_id = :id", id=headers["svix-id"]
        )
        == 1
    )
    assert (
        await count(
            engine,
            "SELECT count(*) FROM email_events e JOIN inbox_emails m ON m.id = e.email_id"
            " WHERE m.resend_email_id = :id",
            id=resend_id,
        )
        == 1
    )


def _seven_events(resend_id: str, t0):  # type: ignore[no-untyped-def]
    bounce = {"bounce": {"type": "Transient", "subType": "General", "message": "try later"}}
    return [
        event("email.sent", resend_id, t0),
        event("email.delivery_delayed", resend_id, t0 + timedelta(seconds=1), sent_at=t0, **bounce),
        event("email.delivered", resend_id, t0 + timedelta(seconds=2), sent_at=t0),
        event("email.opened", resend_id, t0 + timedelta(seconds=3), sent_at=t0),
        event("email.opened", resend_id, t0 + timedelta(seconds=4), sent_at=t0),
        # Same instant: the complaint outranks the click.
        event("email.clicked", resend_id, t0 + timedelta(seconds=5), sent_at=t0, click={"link": "https://x"}),
        event("email.complained", resend_id, t0 + timedelta(seconds=5), sent_at=t0),
    ]


def _comparable(email) -> dict[str, object]:  # type: ignore[no-untyped-def]
    row = asdict(email)
    for volatile in ("id", "resend_email_id", "created_at", "updated_at"):
        row.pop(volatile)
    return row


async def test_seven_events_in_fifty_shuffled_orders_give_one_final_row(
    webhooks: WebhookService, inbox: InboxService
) -> None:
    t0 = now() - timedelta(minutes=30)
    rng = random.Random(20250101)
    finals = []
    for _ in range(50):
        resend_id = str(uuid.uuid4())
        events = _seven_events(resend_id, t0)
        rng.shuffle(events)
        for payload in events:
            await deliver(webhooks, payload)
        finals.append(_comparable(await email_of(inbox, resend_id)))
    assert all(final == finals[0] for final in finals)
    final = finals[0]
    assert final["status"] is EmailStatus.COMPLAINED
    assert final["last_event_type"] == "email.complained"
    assert final["last_event_at"] == t0 + timedelta(seconds=5)
    assert final["delivered_at"] == t0 + timedelta(seconds=2)
    assert final["opened_at"] == t0 + timedelta(seconds=3)
    assert final["clicked_at"] == t0 + timedelta(seconds=5)
    assert final["bounce_type"] == "Transient"
    assert final["complained"] is True


async def test_older_event_never_overwrites_newer_status_or_erases_facts(
    webhooks: WebhookService, inbox: InboxService
) -> None:
    resend_id = str(uuid.uuid4())
    t0 = now() - timedelta(minutes=5)
    bounce = {"bounce": {"type": "Permanent", "subType": "General", "message": "no such user"}}
    await deliver(webhooks, event("email.bounced", resend_id, t0 + timedelta(seconds=9), **bounce))
    await deliver(webhooks, event("email.delivered", resend_id, t0 + timedelta(seconds=3)))
    await deliver(webhooks, event("email.sent", resend_id, t0))
    email = await email_of(inbox, resend_id)
    assert email.status is EmailStatus.BOUNCED
    assert email.last_event_at == t0 + timedelta(seconds=9)
    assert email.bounce_type == "Permanent"
    assert email.bounce_description == "no such user"
    assert email.delivered_at == t0 + timedelta(seconds=3)


async def test_booking_tag_links_and_deleted_booking_leaves_email_with_null_link(
    webhooks: WebhookService, inbox: InboxService, engine: AsyncEngine
) -> None:
    booking_id = await insert_booking(engine)
    linked, unknown, garbage = (str(uuid.uuid4()) for _ in range(3))
    tags = [
        {"name": "booking_id", "value": str(booking_id)},
        {"name": "email_type", "value": "payment_receipt"},
    ]
    await deliver(webhooks, event("email.sent", linked, now(), tags=tags))
    await deliver(webhooks, event("email.sent", unknown, now(), tags={"booking_id": str(uuid.uuid4())}))
    await deliver(webhooks, event("email.sent", garbage, now(), tags={"booking_id": "EXO-1234"}))
    email = await email_of(inbox, linked)
    assert email.booking_id == booking_id
    assert email.email_type == "payment_receipt"
    assert email.tags == {"booking_id": str(booking_id), "email_type": "payment_receipt"}
    assert (await email_of(inbox, unknown)).booking_id is None
    assert (await email_of(inbox, garbage)).booking_id is None

    detail = await inbox.get_email(ADMIN, email.id)
    assert detail.booking is not None
    assert detail.booking.status == "CONFIRMED"

    async with engine.begin() as db:
        await db.execute(text("DELETE FROM bookings WHERE id = :id"), {"id": booking_id})
    after = await email_of(inbox, linked)
    assert after is not None
    assert after.booking_id is None
    assert (await inbox.get_email(ADMIN, email.id)).booking is None


@pytest.mark.parametrize(
    "event_type", ["email.received", "contact.created", "domain.updated", "email.future_thing"]
)
async def test_unknown_event_types_are_stored_and_ignored(
    webhooks: WebhookService, engine: AsyncEngine, event_type: str
) -> None:
    resend_id = str(uuid.uuid4())
    receipt = await deliver(
        webhooks, {"type": event_type, "created_at": "whenever", "data": {"email_id": resend_id}}
    )
    assert receipt.status is WebhookEventStatus.IGNORED
    assert (
        await count(engine, "SELECT count(*) FROM inbox_emails WHERE resend_email_id = :id", id=resend_id)
        == 0
    )
    assert (
        await count(
            engine,
            "SELECT count(*) FROM webhook_events WHERE id = :id AND status = 'ignored'",
            id=receipt.event_id,
        )
        == 1
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"created_at": "2025-01-01T00:00:00Z"}', "body.type"),
        (
            encode({"type": "email.sent", "created_at": "2025-01-01T00:00:00Z", "data": {}}),
            "body.data.email_id",
        ),
        (encode({"type": "email.sent", "data": {"email_id": "x"}}), "body.created_at"),
        (
            encode({"type": "email.sent", "created_at": "yesterday", "data": {"email_id": "x"}}),
            "body.created_at",
        ),
        (encode({"type": "email.sent", "created_at": "2025-01-01T00:00:00Z"}), "body.data"),
    ],
)
async def test_malformed_signed_body_is_stored_failed_and_refused_naming_the_field(
    webhooks: WebhookService, body: bytes, field: str
) -> None:
    headers = sign(body, now())
    with pytest.raises(DomainError) as caught:
        await webhooks.handle_resend(body, headers)
    assert caught.value.reason is Reason.VALIDATION_ERROR
    assert caught.value.violations[0].field == field
    events, _ = await webhooks.list_events(
        ADMIN, WebhookEventFilter(status=WebhookEventStatus.FAILED), page_size=100
    )
    stored = next(e for e in events if e.provider_event_id == headers["svix-id"])
    assert stored.body == body
    assert stored.last_error is not None
    assert field in stored.last_error


async def test_bad_signature_stores_nothing_and_is_counted(
    webhooks: WebhookService, engine: AsyncEngine
) -> None:
    body = encode(event("email.sent", str(uuid.uuid4()), now()))
    headers = sign(body, now())
    headers["svix-signature"] = "v1,AAAA" + headers["svix-signature"][7:]
    before = webhooks.rejections["no_match"]
    with pytest.raises(DomainError) as caught:
        await webhooks.handle_resend(body, headers)
    assert caught.value.reason is Reason.INVALID_SIGNATURE
    assert webhooks.rejections["no_match"] == before + 1
    assert (
        await count(
            engine, "SELECT count(*) FROM webhook_events WHERE provider_event_id = :id", id=headers["svix-id"]
        )
        == 0
    )
    stale = sign(body, now() - timedelta(minutes=6))
    with pytest.raises(DomainError):
        await webhooks.handle_resend(body, stale)
    assert webhooks.rejections["stale_timestamp"] >= 1


async def test_replay_reapplies_stored_bytes_idempotently(
    webhooks: WebhookService, inbox: InboxService, engine: AsyncEngine
) -> None:
    resend_id = str(uuid.uuid4())
    receipt = await deliver(webhooks, event("email.opened", resend_id, now()))
    before = _comparable(await email_of(inbox, resend_id))
    replayed = await webhooks.replay(ADMIN, receipt.event_id)
    replayed = await webhooks.replay(ADMIN, receipt.event_id)
    assert replayed.attempts == 3
    assert replayed.status is WebhookEventStatus.PROCESSED
    assert _comparable(await email_of(inbox, resend_id)) == before
    assert (
        await count(
            engine, "SELECT count(*) FROM email_events WHERE webhook_event_id = :id", id=receipt.event_id
        )
        == 1
    )


async def test_replay_of_malformed_event_stays_failed(webhooks: WebhookService) -> None:
    body = b'{"type": "email.sent"}'
    with pytest.raises(DomainError):
        await webhooks.handle_resend(body, sign(body, now()))
    failed, _ = await webhooks.list_events(
        ADMIN, WebhookEventFilter(status=WebhookEventStatus.FAILED), page_size=1
    )
    replayed = await webhooks.replay(ADMIN, failed[0].id)
    assert replayed.status is WebhookEventStatus.FAILED
    assert replayed.attempts == failed[0].attempts + 1
    assert replayed.processed_at is None


async def test_replay_unknown_event_is_not_found(webhooks: WebhookService) -> None:
    with pytest.raises(DomainError) as caught:
        await webhooks.replay(ADMIN, uuid.uuid4())
    assert caught.value.reason is Reason.WEBHOOK_EVENT_NOT_FOUND


@pytest.mark.parametrize(
    ("principal", "reason"),
    [(Principal(Role.ANONYMOUS), Reason.UNAUTHENTICATED), (CUSTOMER, Reason.PERMISSION_DENIED)],
)
async def test_only_staff_list_and_replay(
    webhooks: WebhookService, principal: Principal, reason: Reason
) -> None:
    with pytest.raises(DomainError) as listing:
        await webhooks.list_events(principal, WebhookEventFilter())
    assert listing.value.reason is reason
    with pytest.raises(DomainError) as replay:
        await webhooks.replay(principal, uuid.uuid4())
    assert replay.value.reason is reason


async def test_list_events_pages_without_gaps_or_repeats(webhooks: WebhookService) -> None:
    start = now() - timedelta(seconds=1)
    ids = set()
    for _ in range(7):
        ids.add((await deliver(webhooks, event("email.sent", str(uuid.uuid4()), now()))).event_id)
    where = WebhookEventFilter(provider="resend", status=WebhookEventStatus.PROCESSED, received_from=start)
    seen: list[uuid.UUID] = []
    token = ""
    while True:
        page, token = await webhooks.list_events(ADMIN, where, page_size=3, page_token=token)
        seen.extend(e.id for e in page)
        if not token:
            break
    assert len(seen) == len(set(seen))
    assert ids <= set(seen)
    with pytest.raises(DomainError) as caught:
        await webhooks.list_events(
            ADMIN,
            WebhookEventFilter(),
            page_size=3,
            page_token=(await webhooks.list_events(ADMIN, where, page_size=1))[1],
        )
    assert caught.value.violations[0].field == "page_token"


async def test_inbox_lists_what_webhooks_wrote(webhooks: WebhookService, inbox: InboxService) -> None:
    resend_id = str(uuid.uuid4())
    await deliver(webhooks, event("email.bounced", resend_id, now(), to=f"{resend_id}@example.com"))
    page, _ = await inbox.list_emails(
        ADMIN, EmailFilter(status=EmailStatus.BOUNCED, recipient=f"{resend_id}@EXAMPLE.com")
    )
    assert [e.resend_email_id for e in page.emails] == [resend_id]
