"""One error model: every reason has its code and the same rich status shape; nothing leaks."""

from __future__ import annotations

import grpc
import pytest
from edge_harness import SECRET_TEXT, edge_server, metadata_of, status_details
from exodrive.v1 import fleet_pb2
from google.rpc import code_pb2, error_details_pb2

from server.errors import ERROR_DOMAIN, QUOTA_SUBJECT, status_of
from server.interceptors import build_interceptors
from server.metrics import Metrics
from server.policy import PolicyTable
from server.settings import Settings
from services.errors import DomainError, Reason

EXPECTED_CODES = {
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


def test_the_table_covers_every_reason() -> None:
    assert set(EXPECTED_CODES) == set(Reason)


@pytest.fixture
def interceptors(settings: Settings) -> list[grpc.aio.ServerInterceptor]:
    return build_interceptors(settings, PolicyTable(), Metrics())


async def test_every_reason_has_its_code_and_shape(interceptors: list[grpc.aio.ServerInterceptor]) -> None:
    async with edge_server(interceptors) as edge:
        for reason, code in EXPECTED_CODES.items():
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await edge.fleet.GetCar(
                    fleet_pb2.GetCarRequest(car_id=reason.value), metadata=(("x-trace-id", "sweep-trace-1"),)
                )
            error = caught.value
            assert error.code() == code, reason
            assert error.details() == f"failed with {reason.value}"
            status = status_details(error)
            assert status.code == code.value[0]
            assert status.message == error.details()
            info = error_details_pb2.ErrorInfo()
            assert status.details[0].Unpack(info)
            assert info.reason == reason.value
            assert info.domain == ERROR_DOMAIN
            assert dict(info.metadata) == {"car_id": reason.value, "trace_id": "sweep-trace-1"}
            kinds = [detail.TypeName() for detail in status.details]
            expected = ["google.rpc.ErrorInfo"]
            if reason is Reason.VALIDATION_ERROR:
                expected.append("google.rpc.BadRequest")
            if reason is Reason.RATE_LIMITED:
                expected.append("google.rpc.QuotaFailure")
            if reason is Reason.UNAVAILABLE:
                expected.append("google.rpc.RetryInfo")
            assert kinds == expected, reason
            # Response metadata reaches the caller on errors too.
            metadata = metadata_of(error)
            assert metadata["x-trace-id"] == "sweep-trace-1"
            assert str(metadata["x-response-time"]).endswith("ms")


async def test_bad_request_names_the_field(interceptors: list[grpc.aio.ServerInterceptor]) -> None:
    async with edge_server(interceptors) as edge:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await edge.fleet.GetCar(fleet_pb2.GetCarRequest(car_id="VALIDATION_ERROR"))
    bad_request = error_details_pb2.BadRequest()
    assert status_details(caught.value).details[1].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [("car_id", "bad")]


async def test_retry_info_carries_the_delay(interceptors: list[grpc.aio.ServerInterceptor]) -> None:
    async with edge_server(interceptors) as edge:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await edge.fleet.GetCar(fleet_pb2.GetCarRequest(car_id="UNAVAILABLE"))
    retry = error_details_pb2.RetryInfo()
    assert status_details(caught.value).details[1].Unpack(retry)
    assert retry.retry_delay.ToMilliseconds() == 1500


async def test_unexpected_exception_is_a_generic_internal(
    interceptors: list[grpc.aio.ServerInterceptor],
) -> None:
    async with edge_server(interceptors) as edge:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await edge.fleet.GetCar(fleet_pb2.GetCarRequest(car_id="boom"))
    error = caught.value
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "internal error"
    status = status_details(error)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "INTERNAL"
    everything = repr(metadata_of(error)) + error.details() + str(error.debug_error_string())
    for fragment in ("hunter2", "SELECT", "/srv/app", "RuntimeError", "Traceback", SECRET_TEXT):
        assert fragment not in everything


def test_quota_failure_names_the_budget() -> None:
    error = DomainError(
        Reason.RATE_LIMITED,
        "rate limit exceeded",
        metadata={QUOTA_SUBJECT: "public:abc"},
        retry_after_seconds=2,
    )
    status = status_of(error, "t-1")
    assert status.code == code_pb2.RESOURCE_EXHAUSTED
    quota = error_details_pb2.QuotaFailure()
    assert status.details[1].Unpack(quota)
    assert quota.violations[0].subject == "public:abc"
    retry = error_details_pb2.RetryInfo()
    assert status.details[2].Unpack(retry)
    assert retry.retry_delay.seconds == 2
