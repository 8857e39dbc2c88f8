"""Cache-aside for the methods whose policy has a cache TTL (unary calls only).

The key is the method plus the deterministic serialization of the request, hashed, plus the
caller's identity when the policy says the response depends on it; keys hold no personal data.
Tags come from the policy, with `{field}` replaced by that request field's value.
"""

from __future__ import annotations

import hashlib
import re
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


def tags_of(templates: Any, request: Message) -> list[str]:
    return [
        _FIELD.sub(lambda match: _field_value(request, match.group(1)), template) for template in templates
    ]


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
        self._response_types: dict[str, type[Message]] = {
            info.full_name: message_factory.GetMessageClass(info.descriptor.output_type)
            for info in policies.methods()
            if info.policy.cache.ttl_seconds > 0
        }

    def applies(self, method: str, info: MethodInfo | None) -> bool:
        return method in self._response_types

    async def around(self, call: Call, proceed: Proceed) -> Any:
        info, request = call.info, call.request
        if info is None or request is None or call.streaming_response:
            return await proceed()
        policy = info.policy.cache
        hasher = hashlib.sha256(call.method.encode())
        hasher.update(b"\0")
        hasher.update(request.SerializeToString(deterministic=True))
        if policy.per_caller:
            principal = current_principal()
            hasher.update(
                f"\0{principal.role}\0{principal.subject or ''}\0{principal.booking_token or ''}".encode()
            )
        produced: list[Message] = []

        async def compute() -> bytes:
            response: Message = await proceed()
            produced.append(response)
            return response.SerializeToString()

        lookup = await self._cache.get_or_compute(
            hasher.hexdigest(), tags_of(policy.tags, request), policy.ttl_seconds, compute
        )
        self._metrics.cache.labels(call.method, lookup.outcome.value.lower()).inc()
        add_response_metadata(CACHE_HEADER, lookup.outcome.value)
        if produced and lookup.outcome is not Outcome.HIT:
            return produced[0]
        return self._response_types[call.method].FromString(lookup.value)
