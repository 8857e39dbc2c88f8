"""HTTP headers <-> gRPC metadata.

In: `Authorization`, the trace id, the guest's `X-Booking-Token`, the provider's `svix-*` and
`webhook-*` signature headers, `Grpc-Metadata-*` headers, and `X-Forwarded-For` (its rightmost hops
only) with the peer appended (the server trusts it only from configured proxies). What is forwarded
must fit gRPC's metadata limit, or the gateway refuses the request itself (431).
Out: the edge's response metadata as `X-Trace-Id`, `X-Cache`, `X-RateLimit-*`, `Retry-After`,
`X-Response-Time`, plus the IETF `RateLimit` / `RateLimit-Policy` fields.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence

from services.errors import DomainError, FieldViolation, Reason, invalid_field

GRPC_METADATA_PREFIX = "grpc-metadata-"
_PASS_THROUGH = ("authorization", "x-booking-token", "traceparent", "tracestate")
_PASS_PREFIXES = ("svix-", "webhook-")
# Headers HTTP owns; never metadata even when spelled as Grpc-Metadata-*.
_RESERVED = ("content-type", "content-length", "host", "te", "connection", "user-agent", "grpc-")
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_GRPC_TIMEOUT = re.compile(r"(\d{1,8})([HMSmun])")
# What gRPC lets an ASCII metadata entry carry; anything else makes the call fail before it is
# sent, so it is refused here as the caller's mistake (400), not left to become a 500.
_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")
# gRPC servers refuse metadata over 8 KiB at random and over 16 KiB always, counting each entry as
# name + value + 32 bytes; its own headers (:path, user-agent, ...) take about 700 of those. What
# the gateway forwards stays under the rest, so the server never refuses it.
MAX_METADATA_BYTES = 7168
_ENTRY_OVERHEAD = 32
# X-Forwarded-For: the rightmost hops are the ones trusted proxies appended; more than this many,
# or an entry longer than any address with a port, is the client's own text.
MAX_FORWARDED_HOPS = 20
_MAX_HOP_LENGTH = 64
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}

RESPONSE_HEADERS = {
    "x-trace-id": "X-Trace-Id",
    "x-cache": "X-Cache",
    "x-ratelimit-limit": "X-RateLimit-Limit",
    "x-ratelimit-remaining": "X-RateLimit-Remaining",
    "x-ratelimit-reset": "X-RateLimit-Reset",
    "retry-after": "Retry-After",
    "x-response-time": "X-Response-Time",
}
EXPOSED_HEADERS = [*RESPONSE_HEADERS.values(), "RateLimit", "RateLimit-Policy"]


def trace_id_of(headers: Mapping[str, str]) -> str:
    """The caller's trace id when well formed (`X-Trace-Id`, else W3C `traceparent`), else a new one."""
    given = headers.get("x-trace-id", "")
    if _TRACE_ID.fullmatch(given):
        return given.lower()
    parent = _TRACEPARENT.fullmatch(headers.get("traceparent", ""))
    if parent is not None and parent.group(1) != "0" * 32:
        return parent.group(1)
    return uuid.uuid4().hex


def timeout_of(headers: Mapping[str, str], default: float) -> float:
    """Seconds from `Grpc-Timeout` (gRPC's wire format, e.g. `500m`), else the default."""
    given = headers.get("grpc-timeout")
    if given is None:
        return default
    found = _GRPC_TIMEOUT.fullmatch(given.strip())
    if found is None:
        raise invalid_field("Grpc-Timeout", "must be 1 to 8 digits and a unit of H, M, S, m, u or n")
    return int(found.group(1)) * _TIMEOUT_UNITS[found.group(2)]


def _carried(header: str, name: str, value: str) -> tuple[str, str]:
    """One metadata entry, or a VALIDATION_ERROR naming the header gRPC could not carry."""
    if not _METADATA_KEY.fullmatch(name):
        raise invalid_field(header, "a metadata name of lower-case letters, digits, '_', '.' and '-'")
    if not _METADATA_VALUE.fullmatch(value):
        raise invalid_field(header, "must be printable ASCII")
    return name, value


class HeadersTooLargeError(DomainError):
    """The forwarded headers would not fit gRPC's metadata limit: 431, naming the largest."""

    def __init__(self, header: str) -> None:
        description = f"request headers forwarded to the API exceed {MAX_METADATA_BYTES} bytes"
        super().__init__(
            Reason.VALIDATION_ERROR,
            description,
            metadata={"header": header, "max_bytes": str(MAX_METADATA_BYTES)},
            violations=(FieldViolation(header, f"too large: {description}"),),
        )


def rightmost_hops(values: Sequence[str]) -> list[str]:
    """The X-Forwarded-For entries worth forwarding: walked from the right, up to
    MAX_FORWARDED_HOPS, stopping at an entry too long to be an address."""
    hops: list[str] = []
    for value in reversed(values):
        for entry in reversed(value.split(",")):
            hop = entry.strip()
            if len(hops) == MAX_FORWARDED_HOPS or len(hop) > _MAX_HOP_LENGTH:
                return hops[::-1]
            if hop:
                hops.append(hop)
    return hops[::-1]


def request_metadata(
    headers: Iterable[tuple[str, str]], peer: str | None, trace_id: str
) -> list[tuple[str, str]]:
    """The metadata of the upstream call; a header gRPC cannot carry is a VALIDATION_ERROR, and
    headers too large for it together a HeadersTooLargeError."""
    metadata: list[tuple[str, str]] = [("x-trace-id", trace_id)]
    header_of: dict[int, str] = {}  # index in metadata -> the header it came from
    forwarded: list[str] = []
    for raw_key, value in headers:
        key = raw_key.lower()
        if key in _PASS_THROUGH or key.startswith(_PASS_PREFIXES):
            header_of[len(metadata)] = raw_key
            metadata.append(_carried(raw_key, key, value))
        elif key == "x-forwarded-for":
            forwarded.append(_carried(raw_key, key, value)[1])
        elif key.startswith(GRPC_METADATA_PREFIX):
            name = key[len(GRPC_METADATA_PREFIX) :]
            if name and not name.endswith("-bin") and not name.startswith(_RESERVED) and name != "x-trace-id":
                header_of[len(metadata)] = raw_key
                metadata.append(_carried(raw_key, name, value))
    hops = rightmost_hops(forwarded)
    if peer:
        hops.append(peer)
    if hops:
        metadata.append(("x-forwarded-for", ", ".join(hops)))
    sizes = [len(key) + len(value) + _ENTRY_OVERHEAD for key, value in metadata]
    if sum(sizes) > MAX_METADATA_BYTES:
        largest = max(header_of, key=lambda index: sizes[index], default=None)
        raise HeadersTooLargeError(header_of[largest] if largest is not None else "x-forwarded-for")
    return metadata


def response_headers(metadata: Sequence[tuple[str, str | bytes]]) -> dict[str, str]:
    """Headers from initial then trailing metadata (later values win)."""
    headers: dict[str, str] = {}
    for key, value in metadata:
        if isinstance(value, bytes):
            continue
        name = RESPONSE_HEADERS.get(key)
        if name is not None:
            headers[name] = value
    limit = headers.get("X-RateLimit-Limit")
    remaining = headers.get("X-RateLimit-Remaining")
    reset = headers.get("X-RateLimit-Reset")
    if limit and remaining and reset:
        # draft-ietf-httpapi-ratelimit-headers: quota, remaining and seconds to reset.
        headers["RateLimit-Policy"] = f'"default";q={limit}'
        headers["RateLimit"] = f'"default";r={remaining};t={reset}'
    return headers
