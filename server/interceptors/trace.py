"""Trace ids: reuse the caller's when well formed, else make one; visible to the whole call."""

from __future__ import annotations

import os
import re
from typing import Any

from server.interceptors.calls import AroundInterceptor, Call, Proceed, add_response_metadata
from server.request_context import trace_id_var

TRACE_ID_HEADER = "x-trace-id"
TRACEPARENT_HEADER = "traceparent"

# Safe in logs and headers; long enough to be unique, short enough to bound what we store.
_TRACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,63}")
# W3C Trace Context: version-traceid-parentid-flags; version ff is invalid, all-zero ids are invalid.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def new_trace_id() -> str:
    return os.urandom(16).hex()


def trace_id_from(x_trace_id: str | None, traceparent: str | None) -> str:
    """The caller's trace id when well formed, else the one of its `traceparent`, else a new one."""
    if x_trace_id is not None and _TRACE_ID.fullmatch(x_trace_id):
        return x_trace_id
    if traceparent is not None:
        match = _TRACEPARENT.fullmatch(traceparent.strip())
        if match is not None:
            version, trace_id, parent_id, _flags, rest = match.groups()
            valid = version != "ff" and (version != "00" or rest is None)
            if valid and trace_id != "0" * 32 and parent_id != "0" * 16:
                return trace_id
    return new_trace_id()


class TraceInterceptor(AroundInterceptor):
    async def around(self, call: Call, proceed: Proceed) -> Any:
        trace_id = trace_id_from(call.metadata(TRACE_ID_HEADER), call.metadata(TRACEPARENT_HEADER))
        token = trace_id_var.set(trace_id)
        add_response_metadata(TRACE_ID_HEADER, trace_id)
        try:
            return await proceed()
        finally:
            trace_id_var.reset(token)
