"""Typed Python clients of the ExoDrive API (async `ExoDriveClient`, blocking `ExoDriveSyncClient`)."""

from clients.async_client import ExoDriveClient
from clients.call_metadata import Reply
from clients.errors import (
    Conflict,
    DeadlineExceeded,
    ExoDriveError,
    FailedPrecondition,
    FieldViolation,
    InternalError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from clients.retry import NO_RETRY, RetryPolicy
from clients.sync_client import ExoDriveSyncClient

__all__ = [
    "NO_RETRY",
    "Conflict",
    "DeadlineExceeded",
    "ExoDriveClient",
    "ExoDriveError",
    "ExoDriveSyncClient",
    "FailedPrecondition",
    "FieldViolation",
    "InternalError",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "Reply",
    "RetryPolicy",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
]
