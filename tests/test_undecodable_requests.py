"""Request bytes that are not a valid protobuf message, sent raw over a real channel: every RPC shape
answers INVALID_ARGUMENT with the catalogue's details (ErrorInfo, trace id, a BadRequest violation)
and nothing of Python's internals, instead of grpcio's UNKNOWN "Unexpected <class ...>"."""

from __future__ import annotations

import grpc
import pytest
from conftest import RunningServer
from edge_harness import metadata_of, status_details
from google.rpc import error_details_pb2

from server.interceptors.calls import UNDECODABLE_FIELD

CORRUPT = b"\xff\xff\xff\xff"
# Field 1 (car_id, a string) holding bytes that are not UTF-8.
BAD_UTF8 = b"\x0a\x02\xc3\x28"
TRACE_ID = "undecodable-trace-0001"


def assert_refused(error: grpc.aio.AioRpcError, message_name: str) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    text = error.details() or ""
    for internal in ("class", "DecodeError", "Unexpected"):
        assert internal not in text
    metadata = metadata_of(error)
    assert metadata["x-trace-id"] == TRACE_ID
    status = status_details(error)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info = error_details_pb2.ErrorInfo()
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info)
    assert info.reason == "VALIDATION_ERROR"
    assert info.domain == "exodrive.com"
    assert info.metadata["trace_id"] == TRACE_ID
    assert any(detail.Unpack(bad_request) for detail in status.details)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        (UNDECODABLE_FIELD, f"is not a valid {message_name} message")
    ]


@pytest.mark.parametrize("payload", [CORRUPT, BAD_UTF8], ids=["corrupt", "bad-utf8"])
async def test_unary_contract_method(running_server: RunningServer, payload: bytes) -> None:
    call = running_server.channel.unary_unary("/exodrive.v1.FleetService/GetCar")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(payload, metadata=(("x-trace-id", TRACE_ID),))
    assert_refused(caught.value, "exodrive.v1.GetCarRequest")
    calls = running_server.app.metrics.registry.get_sample_value(
        "exodrive_grpc_calls_total",
        {"method": "/exodrive.v1.FleetService/GetCar", "code": "INVALID_ARGUMENT"},
    )
    assert calls == 1.0


async def test_webhook_with_undecodable_request(running_server: RunningServer) -> None:
    call = running_server.channel.unary_unary("/exodrive.v1.WebhookService/HandleResendEvent")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(CORRUPT, metadata=(("x-trace-id", TRACE_ID),))
    # A provider method: nothing proves the caller is the provider, which is refused first.
    assert caught.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED)
    assert "class" not in (caught.value.details() or "")
    assert metadata_of(caught.value)["x-trace-id"] == TRACE_ID


async def test_unary_method_outside_the_contract(running_server: RunningServer) -> None:
    call = running_server.channel.unary_unary("/grpc.health.v1.Health/Check")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(CORRUPT, metadata=(("x-trace-id", TRACE_ID),))
    assert_refused(caught.value, "grpc.health.v1.HealthCheckRequest")


async def test_server_stream(running_server: RunningServer) -> None:
    call = running_server.channel.unary_stream("/grpc.health.v1.Health/Watch")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call(CORRUPT, metadata=(("x-trace-id", TRACE_ID),)):
            pass
    assert_refused(caught.value, "grpc.health.v1.HealthCheckRequest")


async def test_bidirectional_stream(running_server: RunningServer) -> None:
    call = running_server.channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    )

    async def requests():  # type: ignore[no-untyped-def]
        yield CORRUPT

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call(requests(), metadata=(("x-trace-id", TRACE_ID),)):
            pass
    assert_refused(caught.value, "grpc.reflection.v1alpha.ServerReflectionRequest")


async def test_valid_bytes_still_served(running_server: RunningServer) -> None:
    call = running_server.channel.unary_unary("/grpc.health.v1.Health/Check")
    answer = await call(b"")  # an empty HealthCheckRequest
    assert answer == b"\x08\x01"  # status: SERVING
