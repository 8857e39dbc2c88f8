"""The unit of work of the inbox and webhook use cases: the shared one plus their repositories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from sqlalchemy.ext.asyncio import AsyncEngine

from services.principal import Principal
from services.storage.inbox import InboxRepository
from services.storage.unit_of_work import Opening, UnitOfWork
from services.storage.webhook_events import WebhookEventRepository


class InboxUnitOfWork(UnitOfWork):
    inbox: InboxRepository
    webhook_events: WebhookEventRepository

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.inbox = InboxRepository(self.connection)
        self.webhook_events = WebhookEventRepository(self.connection)
        return self


InboxUnitOfWorkFactory = Callable[[Principal], InboxUnitOfWork]


def inbox_unit_of_work_factory(
    engine: AsyncEngine, *, session_role: str | None = None, acquire_timeout: float | None = None
) -> InboxUnitOfWorkFactory:
    abandoned: set[Opening] = set()

    def make(principal: Principal) -> InboxUnitOfWork:
        return InboxUnitOfWork(
            engine, principal, session_role=session_role, acquire_timeout=acquire_timeout, abandoned=abandoned
        )

    return make
