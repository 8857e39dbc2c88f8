"""The gateway's error body, built from a gRPC status and its `google.rpc.Status` details:

    {"error": {"code", "message", "details", "timestamp", "traceId"}, "status": <http>}

`code` is the ErrorInfo reason when the server sent one, else the gRPC code name.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

from server.errors import status_of
from server.gateway.http_status import http_status_of
from services.errors import DomainError

STATUS_DETAILS_KEY = "grpc-status-details-bin"


def decode_status(trailing: Sequence[tuple[str, str | bytes]]) -> status_pb2.Status | None:
    for key, value in trailing:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # a garbled trailer must not turn into a 500
                return None
    return None


def _detail(item: any_pb2.Any) -> dict[str, Any]:
    try:
        return json_format.MessageToDict(item)
    except (json_format.Error, TypeError, KeyError):
        return {"@type": item.type_url}


def error_document(
    code: grpc.StatusCode,
    message: str,
    details: Sequence[any_pb2.Any],
    trace_id: str,
    http_status: int | None = None,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of a failed call."""
    reason = code.name
    for item in details:
        info = error_details_pb2.ErrorInfo()
        if item.Unpack(info):
            reason = info.reason or reason
            trace_id = info.metadata.get("trace_id", trace_id)
            break
    status = http_status if http_status is not None else http_status_of(code)
    body = {
        "error": {
            "code": reason,
            "message": message,
            "details": [_detail(item) for item in details],
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "traceId": trace_id,
        },
        "status": status,
    }
    return status, body


def domain_error_document(
    error: DomainError, code: grpc.StatusCode, trace_id: str, http_status: int | None = None
) -> tuple[int, dict[str, Any]]:
    """A gateway-side failure (bad input, no upstream) in the same shape as an upstream one."""
    status = status_of(error, trace_id)
    return error_document(code, error.message, list(status.details), trace_id, http_status)
