"""JSON log lines: the record's `extra=` fields become keys, redacted like the message."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from enum import StrEnum

import pytest

from server.logging_setup import JsonFormatter, configure_logging
from server.request_context import trace_id_var

JWT_LIKE = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


class Colour(StrEnum):
    RED = "red"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = configure_logging("INFO", stream)
    try:
        yield logging.getLogger("tests.logging"), stream
    finally:
        logging.getLogger().removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_extra_fields_are_json_keys_of_their_own(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged
    event_id = uuid.UUID("00000000-0000-4000-8000-000000000001")
    log.info(
        "webhook stored",
        extra={
            "event_id": event_id,
            "status": Colour.RED,
            "attempts": 3,
            "ratio": 0.5,
            "ok": True,
            "gone": None,
        },
    )
    [line] = _lines(stream)
    assert line["message"] == "webhook stored"
    assert line["event_id"] == "00000000-0000-4000-8000-000000000001"
    assert (line["status"], line["attempts"], line["ratio"], line["ok"], line["gone"]) == (
        "red",
        3,
        0.5,
        True,
        None,
    )
    fixed = {"time", "level", "logger", "message", "trace_id"}
    assert set(line) == fixed | {"event_id", "status", "attempts", "ratio", "ok", "gone"}


def test_extra_fields_are_redacted_like_the_message(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged
    log.warning(
        "login",
        extra={
            "recipient": "jane.doe@example.com",
            "password": "hunter2",
            "api_key": "k-123",
            "header": f"Bearer {JWT_LIKE}",
            "request": {"authorization": "Bearer abc", "to": ["bob.smith@example.org"], "note": "secret=s3"},
            "empty_token": "",
        },
    )
    [line] = _lines(stream)
    assert line["recipient"] == "j***@example.com"
    assert line["password"] == "[redacted]"
    assert line["api_key"] == "[redacted]"
    assert line["header"] == "Bearer [token]"
    assert line["request"] == {
        "authorization": "[redacted]",
        "to": ["b***@example.org"],
        "note": "secret=[redacted]",
    }
    assert line["empty_token"] == ""
    text = stream.getvalue()
    for secret in ("hunter2", "k-123", JWT_LIKE, "jane.doe", "bob.smith", "s3"):
        assert secret not in text


def test_an_extra_never_hides_the_lines_own_keys(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged
    log.info("collide", extra={"level": "fake", "logger": "fake", "time": "fake", "stack": "fake"})
    [line] = _lines(stream)
    assert (line["level"], line["logger"]) == ("INFO", "tests.logging")
    assert line["time"] != "fake"
    assert "stack" not in line
    assert (line["extra_level"], line["extra_logger"], line["extra_time"], line["extra_stack"]) == (
        "fake",
    ) * 4


def test_a_trace_id_extra_is_the_lines_trace_id(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged
    token = trace_id_var.set("from-context")
    try:
        log.info("in a call")
        log.info("from the gateway", extra={"trace_id": "from-extra"})
    finally:
        trace_id_var.reset(token)
    first, second = _lines(stream)
    assert (first["trace_id"], second["trace_id"]) == ("from-context", "from-extra")
    assert "extra_trace_id" not in second


def test_uvicorns_coloured_copy_of_the_message_is_left_out(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logged
    log.info("Uvicorn running", extra={"color_message": "\x1b[1mUvicorn running\x1b[0m"})
    [line] = _lines(stream)
    assert set(line) == {"time", "level", "logger", "message", "trace_id"}


def test_a_plain_line_has_only_the_fixed_keys() -> None:
    record = logging.makeLogRecord({"msg": "hello %s", "args": ("world",), "levelname": "INFO", "name": "x"})
    line = json.loads(JsonFormatter().format(record))
    assert set(line) == {"time", "level", "logger", "message", "trace_id"}
    assert line["message"] == "hello world"
