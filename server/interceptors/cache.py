"""Cache-aside for the methods whose policy has a cache TTL (unary calls only).

The key is the method plus the deterministic serialization of the request, hashed, plus the
caller's identity when the policy says the response depends on it; keys hold no personal data.
Tags come from the policy, with `{field}` replaced by that request field's value.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.message import Message

from server.cache import Outcome, RedisCache
from server.interceptors.calls import AroundInterceptor, Call, Proceed, add_response_metadata
from server.metrics import Metrics
from server.policy import MethodInfo, PolicyTable
from server.request_context import current_principal

CACHE_HEADER = "x-cache"
_FIELD = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")


# A tag template split once: literal text and field paths, alternating (literal first and last).
TagPlan = tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]


def tag_plan(template: str) -> TagPlan:
    pieces = _FIELD.split(template)
    return tuple(pieces[0::2]), tuple(tuple(path.split(".")) for path in pieces[1::2])


def tag_of(plan: TagPlan, request: Message) -> str:
    """The template `plan` was split from, with each `{field}` replaced by its value in `request`."""
    literals, paths = plan
    if not paths:
        return literals[0]
    parts = [literals[0]]
    for path, literal in zip(paths, literals[1:], strict=True):
        value: Any = request
        for name in path:
            value = getattr(value, name)
        parts.append(str(value))
        parts.append(literal)
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class _MethodCache:
    """What a cached method's calls share, worked out once."""

    response_type: type[Message]
    # sha256 already fed with the method and its separator; copied per call.
    hasher: Any
    tags: tuple[TagPlan, ...]
    ttl_seconds: float
    per_caller: bool


def _field_value(request: Message, path: str) -> str:
    value: Any = request
    for name in path.split("."):
        value = getattr(value, name)
    return str(value)


class CacheInterceptor(AroundInterceptor):
    def __init__(self, policies: PolicyTable, cache: RedisCache, metrics: Metrics) -> None:
        super().__init__(policies)
        self._cache = cache
        self._metrics = metrics
        self._methods: dict[str, _MethodCache] = {
            info.full_name: _method_cache(info)
            for info in policies.methods()
            if info.policy.cache.ttl_seconds > 0
        }
        self._lookups = functools.lru_cache(maxsize=None)(metrics.cache.labels)

    def applies(self, method: str, info: MethodInfo | None) -> bool:
        return method in self._methods

    async def around(self, call: Call, proceed: Proceed) -> Any:
        info, request = call.info, call.request
        if info is None or request is None or call.streaming_response:
            return await proceed()
        method = self._methods[call.method]
        hasher = method.hasher.copy()
        hasher.update(request.SerializeToString(deterministic=True))
        if method.per_caller:
            principal = current_principal()
            hasher.update(
                f"\0{principal.role}\0{principal.subject or ''}\0{principal.booking_token or ''}".encode()
            )
        produced: list[Message] = []

        async def compute() -> bytes:
            response: Message = await proceed()
            produced.append(response)
            return response.SerializeToString()

        tags = [tag_of(plan, request) for plan in method.tags]
        lookup = await self._cache.get_or_compute(hasher.hexdigest(), tags, method.ttl_seconds, compute)
        self._lookups(call.method, lookup.outcome.value.lower()).inc()
        add_response_metadata(CACHE_HEADER, lookup.outcome.value)
        if produced and lookup.outcome is not Outcome.HIT:
            return produced[0]
        return method.response_type.FromString(lookup.value)


def _method_cache(info: MethodInfo) -> _MethodCache:
    policy = info.policy.cache
    hasher = hashlib.sha256(info.full_name.encode())
    hasher.update(b"\0")
    return _MethodCache(
        response_type=message_factory.GetMessageClass(info.descriptor.output_type),
        hasher=hasher,
        tags=tuple(tag_plan(template) for template in policy.tags),
        ttl_seconds=policy.ttl_seconds,
        per_caller=policy.per_caller,
    )
