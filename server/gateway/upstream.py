"""The gateway's one pooled channel to the gRPC server, calling methods generically by path.

Messages are (de)serialized with the classes from the descriptor pool, so no stub is needed.
Reconnect backoff is kept short so the gateway recovers within about a second of the server
coming (back) up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.gateway.error_body import decode_status
from server.gateway.routes import Route

Metadata = list[tuple[str, str | bytes]]

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]


@dataclass
class CallResult:
    code: grpc.StatusCode
    message: str
    response: Message | None = None
    details: list[Any] = field(default_factory=list)
    # Initial then trailing metadata: the edge may put its headers in either.
    metadata: Metadata = field(default_factory=list)


def _as_list(metadata: Any) -> Metadata:
    return [(str(key), value) for key, value in (metadata or ())]


class Upstream:
    def __init__(self, target: str) -> None:
        self._target = target
        self._channel: grpc.aio.Channel | None = None
        self._callables: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}

    @property
    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            # Created on first use, inside the serving event loop, which grpc.aio binds to.
            self._channel = grpc.aio.insecure_channel(self._target, options=CHANNEL_OPTIONS)
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None
            self._callables.clear()

    def _callable(self, route: Route) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        found = self._callables.get(route.grpc_path)
        if found is None:
            found = self.channel.unary_unary(
                route.grpc_path,
                request_serializer=route.input_class.SerializeToString,
                response_deserializer=route.output_class.FromString,
            )
            self._callables[route.grpc_path] = found
        return found

    async def call(
        self,
        route: Route,
        request: Message,
        metadata: list[tuple[str, str]],
        timeout: float,  # noqa: ASYNC109
    ) -> CallResult:
        call = self._callable(route)(request, metadata=metadata, timeout=timeout)
        try:
            response = await call
        except grpc.aio.AioRpcError as error:
            trailing = _as_list(error.trailing_metadata())
            status = decode_status(trailing)
            return CallResult(
                code=error.code(),
                message=error.details() or "",
                details=list(status.details) if status is not None else [],
                metadata=_as_list(error.initial_metadata()) + trailing,
            )
        initial = _as_list(await call.initial_metadata())
        trailing = _as_list(await call.trailing_metadata())
        return CallResult(code=grpc.StatusCode.OK, message="", response=response, metadata=initial + trailing)

    async def health(self, service: str, timeout: float) -> str:  # noqa: ASYNC109
        """The upstream's health status name for `service`, or the gRPC code name of the failure."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.aio.AioRpcError as error:
            return str(error.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
