"""The gateway's error body, built from a gRPC status and its `google.rpc.Status` details:

    {"error": {"code", "message", "details", "timestamp", "traceId"}, "status": <http>}

`code` is the ErrorInfo reason when the server sent one, else the gRPC code name.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

from server.errors import ERROR_DOMAIN, status_of
from server.gateway.http_status import http_status_of
from services.errors import DomainError

STATUS_DETAILS_KEY = "grpc-status-details-bin"
ERROR_INFO_NAME = error_details_pb2.ErrorInfo.DESCRIPTOR.full_name
# How soon a caller may retry when the gateway cannot reach the server.
UNAVAILABLE_RETRY_SECONDS = 1
# What a caller reads of a failure the server did not explain (no ErrorInfo): the gateway's own
# channel (connection refused, deadline) or gRPC's core, whose texts name addresses and internals.
_CHANNEL_MESSAGES = {
    grpc.StatusCode.UNAVAILABLE: "upstream unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "upstream deadline exceeded",
    grpc.StatusCode.CANCELLED: "upstream call cancelled",
}


def decode_status(trailing: Sequence[tuple[str, str | bytes]]) -> status_pb2.Status | None:
    for key, value in trailing:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # a garbled trailer must not turn into a 500
                return None
    return None


def has_error_info(details: Sequence[any_pb2.Any]) -> bool:
    """Whether the server explained the failure: every error it raises carries an ErrorInfo."""
    return any(item.TypeName() == ERROR_INFO_NAME for item in details)


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


def channel_error_document(code: grpc.StatusCode, trace_id: str) -> tuple[int, dict[str, Any]]:
    """A failure the server did not explain, with a generic message and the usual details."""
    message = _CHANNEL_MESSAGES.get(code, "upstream call failed")
    info = error_details_pb2.ErrorInfo(reason=code.name, domain=ERROR_DOMAIN, metadata={"trace_id": trace_id})
    details = [any_pb2.Any()]
    details[0].Pack(info)
    if code == grpc.StatusCode.UNAVAILABLE:
        retry = any_pb2.Any()
        retry.Pack(
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=UNAVAILABLE_RETRY_SECONDS))
        )
        details.append(retry)
    return error_document(code, message, details, trace_id)
