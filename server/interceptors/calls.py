"""The one way the edge interceptors wrap a handler, for every RPC shape.

Each interceptor implements `around(call, proceed)`. Response streams are driven through the
writer API (`context.write`), so a whole stream is one awaitable and the same `around` serves
unary and streaming calls alike (health `Watch` is a server stream).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import grpc
from google.protobuf.message import Message

from server.policy import MethodInfo, PolicyTable

Proceed = Callable[[], Awaitable[Any]]
if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
ServerInterceptor = grpc.aio.ServerInterceptor
Behavior = Callable[..., Any]

# Marks the behaviours made here, to tell the servicer's own handler (the innermost) from ours.
_EDGE_MARK = "__exodrive_edge__"


@dataclass
class ResponseMetadata:
    """What the interceptors of one call want the caller to see, sent once by the outermost."""

    items: list[tuple[str, str]] = field(default_factory=list)
    # How many items already went out as initial metadata (streams only).
    sent_initially: int = 0


_response_metadata: ContextVar[ResponseMetadata | None] = ContextVar("response_metadata", default=None)


def add_response_metadata(key: str, value: str) -> None:
    """Adds one entry to the current call's response metadata (no-op outside a call)."""
    collected = _response_metadata.get()
    if collected is not None:
        collected.items.append((key, value))


def begin_response_metadata() -> tuple[ResponseMetadata, Any]:
    collected = ResponseMetadata()
    return collected, _response_metadata.set(collected)


def end_response_metadata(token: Any) -> None:
    _response_metadata.reset(token)


@dataclass(slots=True)
class Call:
    """One call as an interceptor sees it."""

    method: str
    details: grpc.HandlerCallDetails
    context: Context
    # None when the client streams its requests.
    request: Message | None
    info: MethodInfo | None
    streaming_response: bool

    def metadata(self, key: str) -> str | None:
        """The last value of an (ASCII) invocation metadata key, or None."""
        found: str | None = None
        for item in self.details.invocation_metadata or ():
            if item[0] == key and isinstance(item[1], str):
                found = item[1]
        return found


class AroundInterceptor(ServerInterceptor):
    """Base of the edge interceptors: wraps each handler it applies to with `around`."""

    def __init__(self, policies: PolicyTable) -> None:
        self._policies = policies

    def applies(self, method: str, info: MethodInfo | None) -> bool:
        """False leaves the handler untouched (and costs nothing per call)."""
        return True

    async def around(self, call: Call, proceed: Proceed) -> Any:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            # Unknown method: gRPC answers UNIMPLEMENTED.
            return cast("Handler", None)
        method: str = handler_call_details.method
        info = self._policies.get(method)
        if not self.applies(method, info):
            return handler
        return _wrap(handler, self, handler_call_details, info)


async def _drive(behavior: Behavior, first: Any, context: Context) -> None:
    """Runs a streaming handler to its end, writing what an async-generator handler yields.

    Before the servicer's own handler starts, every interceptor has added its metadata: send it
    as initial metadata then, since a stream such as health `Watch` may never end.
    """
    if not getattr(behavior, _EDGE_MARK, False):
        collected = _response_metadata.get()
        if collected is not None and collected.items:
            collected.sent_initially = len(collected.items)
            await context.send_initial_metadata(tuple(collected.items))
    result = behavior(first, context)
    if inspect.isasyncgen(result):
        async for response in result:
            await context.write(response)
    else:
        await result


def _wrap(
    handler: Handler,
    interceptor: AroundInterceptor,
    details: grpc.HandlerCallDetails,
    info: MethodInfo | None,
) -> Handler:
    method: str = details.method
    deserializer = handler.request_deserializer
    serializer = handler.response_serializer
    around = interceptor.around

    if handler.unary_unary is not None:
        unary_unary: Behavior = handler.unary_unary

        async def unary_unary_behavior(request: Message, context: Context) -> Any:
            call = Call(method, details, context, request, info, False)
            return await around(call, lambda: unary_unary(request, context))

        setattr(unary_unary_behavior, _EDGE_MARK, True)
        return grpc.unary_unary_rpc_method_handler(unary_unary_behavior, deserializer, serializer)

    if handler.unary_stream is not None:
        unary_stream: Behavior = handler.unary_stream

        async def unary_stream_behavior(request: Message, context: Context) -> None:
            call = Call(method, details, context, request, info, True)
            await around(call, lambda: _drive(unary_stream, request, context))

        setattr(unary_stream_behavior, _EDGE_MARK, True)
        return grpc.unary_stream_rpc_method_handler(unary_stream_behavior, deserializer, serializer)

    if handler.stream_unary is not None:
        stream_unary: Behavior = handler.stream_unary

        async def stream_unary_behavior(requests: Any, context: Context) -> Any:
            call = Call(method, details, context, None, info, False)
            return await around(call, lambda: stream_unary(requests, context))

        setattr(stream_unary_behavior, _EDGE_MARK, True)
        return grpc.stream_unary_rpc_method_handler(stream_unary_behavior, deserializer, serializer)

    stream_stream: Behavior = handler.stream_stream  # type: ignore[assignment]

    async def stream_stream_behavior(requests: Any, context: Context) -> None:
        call = Call(method, details, context, None, info, True)
        await around(call, lambda: _drive(stream_stream, requests, context))

    setattr(stream_stream_behavior, _EDGE_MARK, True)
    return grpc.stream_stream_rpc_method_handler(stream_stream_behavior, deserializer, serializer)
