"""Maps every failure of a call to one status: domain errors by their reason, anything else to a
generic INTERNAL that is logged once, with its stack and the trace id, and never shown."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from server.errors import code_of, status_of
from server.interceptors.calls import AroundInterceptor, Call, Proceed
from server.interceptors.response_metadata import StatusError
from server.request_context import current_trace_id
from services.errors import DomainError, Reason

log = logging.getLogger(__name__)

STATUS_DETAILS_KEY = "grpc-status-details-bin"
INTERNAL_MESSAGE = "internal error"


def failure_of(error: DomainError) -> StatusError:
    status = status_of(error, current_trace_id())
    return StatusError(
        code_of(error.reason), error.message, ((STATUS_DETAILS_KEY, status.SerializeToString()),)
    )


class ErrorInterceptor(AroundInterceptor):
    async def around(self, call: Call, proceed: Proceed) -> Any:
        try:
            return await proceed()
        except DomainError as error:
            raise failure_of(error) from None
        except (StatusError, grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("unexpected error", extra={"method": call.method})
            raise failure_of(DomainError(Reason.INTERNAL, INTERNAL_MESSAGE)) from None
