"""Trace ids: reused when well formed, taken from traceparent, else new; on every response."""

from __future__ import annotations

import io
import json
import logging

import grpc
import pytest
from edge_harness import edge_server, metadata_of, metadata_of_call, status_details
from exodrive.v1 import fleet_pb2
from google.rpc import error_details_pb2

from server.interceptors import build_interceptors
from server.interceptors.trace import trace_id_from
from server.logging_setup import configure_logging, redact
from server.metrics import Metrics
from server.policy import PolicyTable
from server.settings import Settings

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_well_formed_trace_id_is_kept() -> None:
    assert trace_id_from("abc123def456", None) == "abc123def456"


def test_traceparent_gives_its_trace_id() -> None:
    assert trace_id_from(None, TRACEPARENT) == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    "x_trace_id",
    ["", "short", "has space in it", "x" * 65, "evil\nnewline-injected", "-leading-dash"],
)
def test_malformed_trace_id_is_replaced(x_trace_id: str) -> None:
    made = trace_id_from(x_trace_id, None)
    assert made != x_trace_id
    assert len(made) == 32
    int(made, 16)


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has no extra fields
    ],
)
def test_malformed_traceparent_is_replaced(traceparent: str) -> None:
    assert trace_id_from(None, traceparent) != "4bf92f3577b34da6a3ce929d0e0e4736"


def test_x_trace_id_wins_over_traceparent() -> None:
    assert trace_id_from("mytrace-0001", TRACEPARENT) == "mytrace-0001"


@pytest.fixture
def interceptors(settings: Settings) -> list[grpc.aio.ServerInterceptor]:
    return build_interceptors(settings, PolicyTable(), Metrics())


async def test_trace_id_returned_on_success(interceptors: list[grpc.aio.ServerInterceptor]) -> None:
    async with edge_server(interceptors) as edge:
        call = edge.fleet.GetCar(
            fleet_pb2.GetCarRequest(car_id="c1"), metadata=(("x-trace-id", "trace-ok-0001"),)
        )
        await call
        assert (await metadata_of_call(call))["x-trace-id"] == "trace-ok-0001"


async def test_new_trace_id_on_success_without_one(interceptors: list[grpc.aio.ServerInterceptor]) -> None:
    async with edge_server(interceptors) as edge:
        call = edge.fleet.GetCar(fleet_pb2.GetCarRequest(car_id="c1"))
        await call
        trace_id = (await metadata_of_call(call))["x-trace-id"]
        assert isinstance(trace_id, str)
        assert len(trace_id) == 32


async def test_trace_id_in_error_metadata_and_details(interceptors: list[grpc.aio.ServerInterceptor]) -> None:
    async with edge_server(interceptors) as edge:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await edge.fleet.GetCar(
                fleet_pb2.GetCarRequest(car_id="CAR_NOT_FOUND"), metadata=(("traceparent", TRACEPARENT),)
            )
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert metadata_of(caught.value)["x-trace-id"] == trace_id
    info = error_details_pb2.ErrorInfo()
    assert status_details(caught.value).details[0].Unpack(info)
    assert info.metadata["trace_id"] == trace_id


async def test_unexpected_error_is_logged_once_as_json_with_trace_id(
    interceptors: list[grpc.aio.ServerInterceptor],
) -> None:
    stream = io.StringIO()
    handler = configure_logging("INFO", stream)
    try:
        async with edge_server(interceptors) as edge:
            with pytest.raises(grpc.aio.AioRpcError):
                await edge.fleet.GetCar(
                    fleet_pb2.GetCarRequest(car_id="boom"), metadata=(("x-trace-id", "trace-log-01"),)
                )
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    errors = [line for line in lines if line["logger"] == "server.interceptors.errors"]
    assert len(errors) == 1
    assert errors[0]["trace_id"] == "trace-log-01"
    assert errors[0]["level"] == "ERROR"
    assert "RuntimeError" in errors[0]["stack"]
    # The secret in the exception text is redacted even in the server's own log.
    assert "hunter2" not in stream.getvalue()


def test_redaction_of_tokens_and_emails() -> None:
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    text = redact(f"user jane.doe@example.com sent Bearer {jwt_like} and password=pw1")
    assert text == "user j***@example.com sent Bearer [token] and password=[redacted]"
