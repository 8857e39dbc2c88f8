"""A real gRPC server for gateway tests that answers every contract method from a script.

It records what reached it (request message, metadata, deadline) and lets a test choose the
answer per method, so transcoding is proven against the real descriptors and a real channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message, message_factory
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server.policy import PolicyTable

Answer = Callable[[message.Message, grpc.aio.ServicerContext[Any, Any]], Any]


@dataclass
class Seen:
    method: str
    request: message.Message
    metadata: dict[str, str]
    time_remaining: float | None


@dataclass
class ScriptedUpstream:
    answers: dict[str, Answer] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    response_metadata: list[tuple[str, str]] = field(
        default_factory=lambda: [
            ("x-trace-id", "0123456789abcdef0123456789abcdef"),
            ("x-ratelimit-limit", "60"),
            ("x-ratelimit-remaining", "59"),
            ("x-ratelimit-reset", "60"),
        ]
    )

    def last(self) -> Seen:
        return self.seen[-1]


async def _abort_rich(
    context: grpc.aio.ServicerContext[Any, Any],
    code: grpc.StatusCode,
    reason: str,
    message_text: str,
    violations: list[tuple[str, str]] | None = None,
    retry_seconds: int | None = None,
) -> None:
    status = status_pb2.Status(code=code.value[0], message=message_text)
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason=reason, domain="exodrive.com", metadata={"trace_id": "f" * 32})
    )
    if violations:
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations
                ]
            )
        )
    if retry_seconds is not None:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.seconds = retry_seconds
        status.details.add().Pack(info)
    context.set_trailing_metadata(
        (("grpc-status-details-bin", status.SerializeToString()), ("retry-after", "7"))
    )
    await context.abort(code, message_text)


def rich_error(code: grpc.StatusCode, reason: str, message_text: str, **kwargs: Any) -> Answer:
    async def answer(request: message.Message, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await _abort_rich(context, code, reason, message_text, **kwargs)

    return answer


def build_server(script: ScriptedUpstream, health_servicer: health.aio.HealthServicer) -> grpc.aio.Server:
    server = grpc.aio.server()
    by_service: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}
    for info in PolicyTable().methods():
        method = info.descriptor
        input_class: Any = message_factory.GetMessageClass(method.input_type)
        output_class: Any = message_factory.GetMessageClass(method.output_type)

        def make(name: str, output: Any) -> Any:
            async def handle(request: message.Message, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
                script.seen.append(Seen(name, request, metadata, context.time_remaining()))
                await context.send_initial_metadata(script.response_metadata[:1])
                context.set_trailing_metadata(
                    [*script.response_metadata[1:], ("x-cache", "HIT"), ("x-response-time", "1.2ms")]
                )
                wanted = metadata.get("x-want-code")
                if wanted and wanted != "OK":
                    await context.abort(grpc.StatusCode[wanted], f"asked for {wanted}")
                answer = script.answers.get(name)
                if answer is not None:
                    result = answer(request, context)
                    if hasattr(result, "__await__"):
                        result = await result
                    return result
                return output()

            return handle

        by_service.setdefault(method.containing_service.full_name, {})[method.name] = (
            grpc.unary_unary_rpc_method_handler(
                make(method.name, output_class),
                request_deserializer=input_class.FromString,
                response_serializer=output_class.SerializeToString,
            )
        )
    for service, handlers in by_service.items():
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server


__all__ = ["ScriptedUpstream", "build_server", "code_pb2", "health_pb2", "rich_error"]
