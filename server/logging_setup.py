"""Structured JSON logs: one object per line, with the trace id of the call that logged it and
the record's `extra=` fields as keys of their own.

Log lines never carry secrets: bearer tokens and JWTs are cut out and email addresses are masked
to their first letter and domain, in the message, the extra fields and the formatted stack
alike; an extra field named like a secret (`password`, `token`, ...) is replaced outright.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from server.request_context import current_trace_id

_JWT = re.compile(r"\beyJ[\w-]*\.[\w-]*\.[\w-]*")
_BEARER = re.compile(r"(?i)\bbearer\s+\S+")
_EMAIL = re.compile(r"\b([A-Za-z0-9])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
_SECRET_ASSIGNMENT = re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key)=\S+")
_SECRET_NAME = re.compile(r"(?i)password|passwd|secret|token|api[_-]?key|authorization|cookie")
# Attributes every LogRecord has; anything else on a record came from `extra=`.
# Also skipped: uvicorn's `color_message`, a copy of the message with terminal colour codes.
_NOT_EXTRA = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def redact(text: str) -> str:
    """The text without tokens, secrets assigned in it, or full email addresses."""
    text = _JWT.sub("[token]", text)
    text = _BEARER.sub("Bearer [token]", text)
    text = _SECRET_ASSIGNMENT.sub(r"\1=[redacted]", text)
    return _EMAIL.sub(r"\1***@\2", text)


class TraceIdFilter(logging.Filter):
    """Stamps each record with the current call's trace id when it is made (same task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "trace_id", None):
            record.trace_id = current_trace_id()
        return True


def _redacted_value(value: object) -> object:
    """A JSON-ready copy of an extra field's value with the same redaction as the message."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(key): _redacted_field(str(key), item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted_value(item) for item in value]
    return redact(str(value))


def _redacted_field(name: str, value: object) -> object:
    if _SECRET_NAME.search(name) and value not in (None, ""):
        return "[redacted]"
    return _redacted_value(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "trace_id": getattr(record, "trace_id", None) or current_trace_id(),
        }
        for name, value in record.__dict__.items():
            if name in _NOT_EXTRA or name == "trace_id":
                continue
            # An extra never hides one of the line's own keys.
            key = f"extra_{name}" if name in entry or name == "stack" else name
            entry[key] = _redacted_field(name, value)
        if record.exc_info:
            entry["stack"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Routes the root logger to one JSON handler on `stream` (stderr by default)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceIdFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing.formatter, JsonFormatter):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
