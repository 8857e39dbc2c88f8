"""Refuses request text PostgreSQL cannot store, for every RPC and every string field.

Protobuf strings may hold U+0000; PostgreSQL `text`, `varchar` and `jsonb` may not, and the
driver's refusal would surface as INTERNAL. Checked here once, before any servicer runs, each
offending field is named in a VALIDATION_ERROR (BadRequest), however deep it is nested.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from server.interceptors.calls import AroundInterceptor, Call, Proceed
from server.policy import PolicyTable
from services.errors import FieldViolation, invalid

NUL = "\x00"
_DESCRIPTION = "must not contain NUL (U+0000) characters"


def _bad_text(value: object) -> bool:
    return isinstance(value, str) and NUL in value


def nul_fields(message: Message, prefix: str = "") -> Iterator[str]:
    """The path of each string (or map key) in `message` that holds a NUL character."""
    for field, value in message.ListFields():
        path = prefix + field.name
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    entry = f"{path}[{key!r}]" if not _bad_text(key) else path
                    if isinstance(item, Message):
                        yield from nul_fields(item, entry + ".")
                    elif _bad_text(key) or _bad_text(item):
                        yield entry
            elif field.is_repeated:
                for index, item in enumerate(value):
                    yield from nul_fields(item, f"{path}[{index}].")
            else:
                yield from nul_fields(value, path + ".")
        elif field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                yield from (f"{path}[{i}]" for i, item in enumerate(value) if _bad_text(item))
            elif _bad_text(value):
                yield path


def may_hold_text(message: Descriptor, visiting: frozenset[str] = frozenset()) -> bool:
    """Whether a message of this type can hold a string anywhere (fields, map keys, nesting)."""
    if message.full_name in visiting:
        # A cycle adds nothing: what it reaches is reached from where it started.
        return False
    inner = visiting | {message.full_name}
    for field in message.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            return True
        if field.message_type is not None and may_hold_text(field.message_type, inner):
            return True
    return False


class RequestTextInterceptor(AroundInterceptor):
    def __init__(self, policies: PolicyTable) -> None:
        super().__init__(policies)
        # Per request type (a bounded set: the server's own methods): worth walking at all?
        self._walked: dict[type[Message], bool] = {}

    async def around(self, call: Call, proceed: Proceed) -> Any:
        # Handlers without a deserializer see raw bytes (and client streams, nothing): not judged.
        if isinstance(call.request, Message) and self._may_hold_text(call.request):
            bad = list(nul_fields(call.request))
            if bad:
                raise invalid(*(FieldViolation(path, _DESCRIPTION) for path in bad))
        return await proceed()

    def _may_hold_text(self, request: Message) -> bool:
        kind = type(request)
        known = self._walked.get(kind)
        if known is None:
            known = self._walked[kind] = may_hold_text(cast("Descriptor", request.DESCRIPTOR))
        return known
