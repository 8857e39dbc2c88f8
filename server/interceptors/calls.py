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
from google.protobuf.message import DecodeError, Message

from server.policy import MethodInfo, PolicyTable
from services.errors import invalid_field

Proceed = Callable[[], Awaitable[Any]]
if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
ServerInterceptor = grpc.aio.ServerInterceptor
Behavior = Callable[..., Any]

# Marks the behaviours made here, to tell the servicer's own handler (the innermost) from ours.
_EDGE_MARK = "__exodrive_edge__"
# The field a BadRequest violation names when the request's bytes are not a valid message.
UNDECODABLE_FIELD = "request"


class _Undecodable:
    """Stands in for a request whose bytes did not parse (corrupt wire format, bad UTF-8 in a
    string). grpcio deserializes before any behaviour runs and would answer UNKNOWN with the
    exception's text; with this marker the call goes through the whole chain (trace id, metrics,
    error details) and is refused where the servicer would have been called."""

    def __init__(self, message_name: str) -> None:
        self.message_name = message_name


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """The handler's deserializer, answering `_Undecodable` instead of raising DecodeError."""
    if deserializer is None or getattr(deserializer, _EDGE_MARK, False):
        return deserializer
    parse = deserializer
    # Generated handlers deserialize with the request class's bound `FromString`.
    descriptor = getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None)
    name = str(getattr(descriptor, "full_name", "request"))

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError:
            return _Undecodable(name)

    setattr(deserialize, _EDGE_MARK, True)
    return deserialize


def _refuse(marker: _Undecodable) -> Exception:
    return invalid_field(UNDECODABLE_FIELD, f"is not a valid {marker.message_name} message")


async def _checked(requests: Any) -> Any:
    """A request stream that refuses the first message whose bytes did not parse."""
    async for request in requests:
        if isinstance(request, _Undecodable):
            raise _refuse(request)
        yield request


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
    context: Context
    # None when the client streams its requests.
    request: Message | None
    info: MethodInfo | None
    streaming_response: bool

    @property
    def invocation_metadata(self) -> Any:
        """The caller's metadata (the same tuple grpc hands to `intercept_service`)."""
        return self.context.invocation_metadata()

    def metadata(self, key: str) -> str | None:
        """The last value of an (ASCII) invocation metadata key, or None."""
        found: str | None = None
        for item in self.context.invocation_metadata() or ():
            if item[0] == key and isinstance(item[1], str):
                found = item[1]
        return found


class AroundInterceptor(ServerInterceptor):
    """Base of the edge interceptors: wraps each handler it applies to with `around`."""

    def __init__(self, policies: PolicyTable) -> None:
        self._policies = policies
        # Per method: the handler it was given and the wrapped one. grpc asks the interceptors
        # for a handler on every call; wrapping once per method keeps that work off the call.
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

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
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        info = self._policies.get(method)
        wrapped = _wrap(handler, self, method, info) if self.applies(method, info) else handler
        # Only methods the server serves get here (unknown ones returned above): bounded.
        self._wrapped[method] = (handler, wrapped)
        return wrapped


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


def _servicer_side(behavior: Behavior, streaming_request: bool) -> Behavior:
    """The servicer's own handler refuses an undecodable request; ours pass it inward."""
    if getattr(behavior, _EDGE_MARK, False):
        return behavior
    if streaming_request:
        return lambda requests, context: behavior(_checked(requests), context)

    def refusing(request: Any, context: Context) -> Any:
        if isinstance(request, _Undecodable):
            raise _refuse(request)
        return behavior(request, context)

    return refusing


def _message(request: Any) -> Message | None:
    return None if isinstance(request, _Undecodable) else request


def _wrap(
    handler: Handler,
    interceptor: AroundInterceptor,
    method: str,
    info: MethodInfo | None,
) -> Handler:
    deserializer = _tolerant(handler.request_deserializer)
    serializer = handler.response_serializer
    around = interceptor.around

    if handler.unary_unary is not None:
        unary_unary = _servicer_side(handler.unary_unary, False)

        async def unary_unary_behavior(request: Message, context: Context) -> Any:
            call = Call(method, context, _message(request), info, False)
            return await around(call, lambda: unary_unary(request, context))

        setattr(unary_unary_behavior, _EDGE_MARK, True)
        return grpc.unary_unary_rpc_method_handler(unary_unary_behavior, deserializer, serializer)

    if handler.unary_stream is not None:
        unary_stream = _servicer_side(handler.unary_stream, False)

        async def unary_stream_behavior(request: Message, context: Context) -> None:
            call = Call(method, context, _message(request), info, True)
            await around(call, lambda: _drive(unary_stream, request, context))

        setattr(unary_stream_behavior, _EDGE_MARK, True)
        return grpc.unary_stream_rpc_method_handler(unary_stream_behavior, deserializer, serializer)

    if handler.stream_unary is not None:
        stream_unary = _servicer_side(handler.stream_unary, True)

        async def stream_unary_behavior(requests: Any, context: Context) -> Any:
            call = Call(method, context, None, info, False)
            return await around(call, lambda: stream_unary(requests, context))

        setattr(stream_unary_behavior, _EDGE_MARK, True)
        return grpc.stream_unary_rpc_method_handler(stream_unary_behavior, deserializer, serializer)

    stream_stream = _servicer_side(handler.stream_stream, True)  # type: ignore[arg-type]

    async def stream_stream_behavior(requests: Any, context: Context) -> None:
        call = Call(method, context, None, info, True)
        await around(call, lambda: _drive(stream_stream, requests, context))

    setattr(stream_stream_behavior, _EDGE_MARK, True)
    return grpc.stream_stream_rpc_method_handler(stream_stream_behavior, deserializer, serializer)
