"""Typed exceptions built from a failed call's `google.rpc.Status` details.

The server puts `ErrorInfo` (reason, metadata with the trace id), `BadRequest` and `RetryInfo` in
the `grpc-status-details-bin` trailer; callers catch a family (`NotFound`, `InvalidArgument`...)
and read `reason` for the precise cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
TRACE_ID_KEY = "x-trace-id"

MetadataPairs = Iterable[tuple[str, str | bytes]]


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class ExoDriveError(Exception):
    """A failed call. `reason` is the server's stable catalogue name (e.g. CAR_UNAVAILABLE)."""

    reason: str
    message: str
    code: grpc.StatusCode
    trace_id: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    # Seconds the server asks the caller to wait before retrying, when it said so.
    retry_after: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message} (trace id {self.trace_id or '-'})"


class InvalidArgument(ExoDriveError):  # noqa: N818 - named for the gRPC code family
    pass


class Unauthenticated(ExoDriveError):  # noqa: N818 - named for the gRPC code family
    pass


class PermissionDenied(ExoDriveError):  # noqa: N818 - named for the gRPC code family
    pass


class NotFound(ExoDriveError):  # noqa: N818 - named for the gRPC code family
    pass


class Conflict(ExoDriveError):  # noqa: N818 - named for the gRPC code family
    """ABORTED (dates taken) or ALREADY_EXISTS (request id reused with other content)."""


class FailedPrecondition(ExoDriveError):  # noqa: N818 - named for the gRPC code family
    pass


class RateLimited(ExoDriveError):  # noqa: N818 - named for the gRPC code family
    pass


class Unavailable(ExoDriveError):  # noqa: N818 - named for the gRPC code family
    pass


class DeadlineExceeded(ExoDriveError):  # noqa: N818 - named for the gRPC code family
    pass


class Unimplemented(ExoDriveError):  # noqa: N818 - named for the gRPC code family
    pass


class InternalError(ExoDriveError):
    pass


_FAMILIES: dict[grpc.StatusCode, type[ExoDriveError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.ALREADY_EXISTS: Conflict,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}


def error_from_status(
    code: grpc.StatusCode, details: str | None, trailing: MetadataPairs, initial: MetadataPairs = ()
) -> ExoDriveError:
    """The typed error of a failed call, from its code, message and metadata."""
    reason = code.name
    message = details or code.name
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    retry_after: float | None = None
    trace_id = ""
    for key, value in [*initial, *trailing]:
        if key == TRACE_ID_KEY and isinstance(value, str):
            trace_id = value
        elif key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = _decode_status(value)
            if status is None:
                continue
            message = status.message or message
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                bad_request = error_details_pb2.BadRequest()
                retry = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    reason = info.reason or reason
                    metadata.update(info.metadata)
                elif detail.Unpack(bad_request):
                    violations.extend(
                        FieldViolation(v.field, v.description) for v in bad_request.field_violations
                    )
                elif detail.Unpack(retry):
                    retry_after = retry.retry_delay.ToNanoseconds() / 1e9
    trace_id = trace_id or metadata.get("trace_id", "")
    family = _FAMILIES.get(code, InternalError if code != grpc.StatusCode.CANCELLED else ExoDriveError)
    return family(
        reason=reason,
        message=message,
        code=code,
        trace_id=trace_id,
        metadata=metadata,
        field_violations=tuple(violations),
        retry_after=retry_after,
    )


def _decode_status(value: bytes) -> status_pb2.Status | None:
    status = status_pb2.Status()
    try:
        status.ParseFromString(value)
    except DecodeError:
        return None
    return status
