"""Structured JSON logs: one object per line, with the trace id of the call that logged it.

Log lines never carry secrets: bearer tokens and JWTs are cut out and email addresses are masked
to their first letter and domain, in the message and in the formatted stack alike.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

from server.request_context import current_trace_id

_JWT = re.compile(r"\beyJ[\w-]*\.[\w-]*\.[\w-]*")
_BEARER = re.compile(r"(?i)\bbearer\s+\S+")
_EMAIL = re.compile(r"\b([A-Za-z0-9])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
_SECRET_ASSIGNMENT = re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key)=\S+")


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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "trace_id": getattr(record, "trace_id", None) or current_trace_id(),
        }
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
