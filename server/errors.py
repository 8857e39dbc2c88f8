"""How a domain error travels over gRPC: one code per reason, and `google.rpc.Status` details."""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.errors import DomainError, Reason

ERROR_DOMAIN = "exodrive.com"
# ErrorInfo metadata key naming the rate-limit budget of a RATE_LIMITED error (its QuotaFailure subject).
QUOTA_SUBJECT = "quota_subject"

CODES: dict[Reason, grpc.StatusCode] = {
    Reason.VALIDATION_ERROR: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Reason.INVALID_SIGNATURE: grpc.StatusCode.UNAUTHENTICATED,
    Reason.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Reason.CAR_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.BOOKING_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.EMAIL_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.WEBHOOK_EVENT_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.CAR_UNAVAILABLE: grpc.StatusCode.ABORTED,
    Reason.REQUEST_ID_REUSED: grpc.StatusCode.ALREADY_EXISTS,
    Reason.INVALID_STATE_TRANSITION: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Reason.INTERNAL: grpc.StatusCode.INTERNAL,
}


def code_of(reason: Reason) -> grpc.StatusCode:
    return CODES[reason]


def status_of(error: DomainError, trace_id: str) -> status_pb2.Status:
    """The rich status of an error: ErrorInfo always; BadRequest, QuotaFailure, RetryInfo when they apply."""
    code = code_of(error.reason)
    status = status_pb2.Status(code=_rpc_code(code), message=error.message)
    info = error_details_pb2.ErrorInfo(
        reason=error.reason.value,
        domain=ERROR_DOMAIN,
        metadata={**error.metadata, "trace_id": trace_id},
    )
    status.details.add().Pack(info)
    if error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ]
        )
        status.details.add().Pack(bad_request)
    if error.reason is Reason.RATE_LIMITED:
        # Which budget ran out: the limiter puts its (hashed, personal-data-free) bucket in metadata.
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=error.metadata.get(QUOTA_SUBJECT, ""), description=error.message
        )
        status.details.add().Pack(error_details_pb2.QuotaFailure(violations=[violation]))
    if error.retry_after_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after_seconds * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status


def _rpc_code(code: grpc.StatusCode) -> int:
    value: int = code.value[0]
    assert code_pb2.Code.Name(value) == code.name
    return value
