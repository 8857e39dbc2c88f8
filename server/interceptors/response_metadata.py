"""Sends the call's response metadata (x-trace-id, x-ratelimit-*, x-cache, retry-after,
x-response-time) exactly once, on success and on error alike.

Inner interceptors add entries with `add_response_metadata`; a failure they map to a status is
raised as `StatusError` and sent from here, so its trailers carry the metadata too. Streams have
already sent the entries collected before their first message as initial metadata.
"""

from __future__ import annotations

import time
from typing import Any

import grpc

from server.interceptors.calls import (
    AroundInterceptor,
    Call,
    Proceed,
    ResponseMetadata,
    begin_response_metadata,
    end_response_metadata,
)

RESPONSE_TIME = "x-response-time"
Trailer = tuple[str, str | bytes]


class StatusError(Exception):
    """A failure already mapped to a gRPC status, with its status-details trailer."""

    def __init__(self, code: grpc.StatusCode, message: str, trailing: tuple[Trailer, ...]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailing = trailing


def _trailers(collected: ResponseMetadata, start: float) -> tuple[Trailer, ...]:
    elapsed = f"{(time.perf_counter() - start) * 1000:.3f}ms"
    return (*collected.items[collected.sent_initially :], (RESPONSE_TIME, elapsed))


class ResponseMetadataInterceptor(AroundInterceptor):
    """Outermost: owns the call's response metadata and sends it."""

    async def around(self, call: Call, proceed: Proceed) -> Any:
        start = time.perf_counter()
        collected, token = begin_response_metadata()
        context = call.context
        try:
            result = await proceed()
        except StatusError as failure:
            trailing = (*failure.trailing, *_trailers(collected, start))
            await context.abort(failure.code, failure.message, trailing_metadata=trailing)
        except grpc.aio.AbortError:
            # The handler aborted by itself: keep its trailers and add ours.
            context.set_trailing_metadata(
                (*(context.trailing_metadata() or ()), *_trailers(collected, start))
            )
            raise
        finally:
            end_response_metadata(token)
        context.set_trailing_metadata(_trailers(collected, start))
        return result
