"""Row level security on the inbox tables, checked as the non-superuser application role."""

from __future__ import annotations

import uuid

import inbox_fixtures
import pytest
from resend_samples import encode, event, now, sign
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.webhooks import WebhookService

engine = inbox_fixtures.engine
uow = inbox_fixtures.uow
webhooks = inbox_fixtures.webhooks

TABLES = ("inbox_emails", "email_events", "webhook_events")


async def as_app(db: AsyncConnection, role: str | None) -> None:
    await db.execute(text("SET LOCAL ROLE exodrive_app"))
    if role is not None:
        await db.execute(text("SELECT set_config('exodrive.role', :role, true)"), {"role": role})


@pytest.fixture(scope="module")
async def stored(webhooks: WebhookService) -> None:
    body = encode(event("email.delivered", str(uuid.uuid4()), now()))
    await webhooks.handle_resend(body, sign(body, now()))


async def counts(engine: AsyncEngine, role: str | None) -> dict[str, int]:
    async with engine.connect() as db, db.begin():
        await as_app(db, role)
        return {t: (await db.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one() for t in TABLES}


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize("role", [None, "", "customer", "anonymous", "Admin"])
async def test_without_a_staff_role_nothing_is_visible(engine: AsyncEngine, role: str | None) -> None:
    assert await counts(engine, role) == dict.fromkeys(TABLES, 0)


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize("role", ["admin", "service"])
async def test_staff_see_every_row(engine: AsyncEngine, role: str) -> None:
    async with engine.connect() as db:
        everything = {t: (await db.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one() for t in TABLES}
    assert min(everything.values()) >= 1
    assert await counts(engine, role) == everything


async def test_a_customer_cannot_write(engine: AsyncEngine) -> None:
    async with engine.connect() as db, db.begin():
        await as_app(db, "customer")
        with pytest.raises(DBAPIError, match="row-level security"):
            await db.execute(
                text(
                    "INSERT INTO webhook_events (provider, provider_event_id, body, signed_at, status)"
                    " VALUES ('resend', 'forged', '\\x00', now(), 'processed')"
                )
            )


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize(
    "statement", ["UPDATE email_events SET event_type = 'x'", "DELETE FROM email_events"]
)
async def test_event_history_is_append_only_even_for_admins(engine: AsyncEngine, statement: str) -> None:
    async with engine.connect() as db, db.begin():
        await as_app(db, "admin")
        with pytest.raises(DBAPIError, match="permission denied"):
            await db.execute(text(statement))
