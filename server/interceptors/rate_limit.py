"""Rate limiting by tier: the method's policy tier, else the caller's own (public per client IP,
authenticated or admin per user). Every limited response carries `x-ratelimit-*`; a refusal is
RESOURCE_EXHAUSTED with `retry-after`, RetryInfo and QuotaFailure.

Redis keys hold a keyed hash of the client address or subject, never the value itself, inside a
hash tag so each budget lives in one Redis Cluster slot.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import math
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from exodrive.v1 import options_pb2

from server.errors import QUOTA_SUBJECT
from server.interceptors.calls import AroundInterceptor, Call, Proceed, add_response_metadata
from server.metrics import Metrics
from server.policy import MethodInfo, PolicyTable
from server.rate_limiter import RateLimiter
from server.request_context import current_principal
from server.settings import Settings
from services.errors import DomainError, Reason
from services.principal import Principal, Role

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
FORWARDED_FOR_HEADER = "x-forwarded-for"
# Callers (addresses, budgets) whose parsing and hashing is remembered: the recent ones.
BUCKET_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Tier:
    name: str
    limit: int
    window_seconds: float


@dataclass(frozen=True)
class Tiers:
    public: Tier
    authenticated: Tier
    admin: Tier
    booking_create: Tier
    webhook: Tier

    @classmethod
    def from_settings(cls, settings: Settings) -> Tiers:
        window = settings.rate_limit_window_seconds
        return cls(
            public=Tier("public", settings.rate_limit_public, window),
            authenticated=Tier("authenticated", settings.rate_limit_authenticated, window),
            admin=Tier("admin", settings.rate_limit_admin, window),
            booking_create=Tier(
                "booking-create",
                settings.rate_limit_booking_create,
                settings.rate_limit_booking_window_seconds,
            ),
            webhook=Tier("webhook", settings.rate_limit_webhook, window),
        )


def parse_networks(values: Sequence[str]) -> list[IpNetwork]:
    return [ipaddress.ip_network(value, strict=False) for value in values]


def _parse_ip(text: str) -> IpAddress | None:
    text = text.strip()
    candidates = [text]
    if text.startswith("["):  # "[v6]:port"
        candidates.append(text[1 : text.find("]")])
    elif text.count(":") == 1:  # "v4:port"
        candidates.append(text.split(":", 1)[0])
    for candidate in candidates:
        try:
            return ipaddress.ip_address(candidate)
        except ValueError:
            continue
    return None


def peer_address(peer: str) -> IpAddress | None:
    """The address of a gRPC peer string: `ipv4:1.2.3.4:5678`, `ipv6:[::1]:5678`."""
    kind, _, rest = urllib.parse.unquote(peer).partition(":")
    if kind == "ipv4":
        return _parse_ip(rest)
    if kind == "ipv6":
        return _parse_ip(rest if rest.startswith("[") else f"[{rest}]")
    return None


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[IpNetwork]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy; then `x-forwarded-for`
    walked from the right, skipping trusted proxies. The left-most entries are whatever the client
    sent, so they are reached only through a chain of trusted proxies."""
    address = peer_address(peer)
    if address is None:
        return peer
    if not forwarded_for or not _is_trusted(address, trusted):
        return str(address)
    for entry in reversed(forwarded_for.split(",")):
        hop = _parse_ip(entry)
        if hop is None:
            # Unparseable: the proxy chain is broken here; the last trusted hop is all we know.
            break
        address = hop
        if not _is_trusted(hop, trusted):
            break
    return str(address)


def _is_trusted(address: IpAddress, trusted: Sequence[IpNetwork]) -> bool:
    return any(address in network for network in trusted)


class RateLimitInterceptor(AroundInterceptor):
    def __init__(
        self,
        policies: PolicyTable,
        limiter: RateLimiter,
        metrics: Metrics,
        *,
        tiers: Tiers,
        key_prefix: str,
        hash_key: bytes,
        trusted_proxies: Sequence[IpNetwork] = (),
        allowlist: Sequence[str] = (),
    ) -> None:
        super().__init__(policies)
        self._limiter = limiter
        self._metrics = metrics
        self._tiers = tiers
        self._prefix = key_prefix
        self._hash_key = hash_key[:64]
        self._trusted = list(trusted_proxies)
        self._allowed_networks = [network for network in _networks_in(allowlist)]
        self._allowed_subjects = {value for value in allowlist if not _is_network(value)}
        # Keyed hashing and label lookups, once per budget rather than once per call; bounded.
        self._bucket_of = functools.lru_cache(maxsize=BUCKET_CACHE_SIZE)(self._bucket)
        self._decisions = functools.lru_cache(maxsize=None)(metrics.rate_limit.labels)
        # A connection's peer (and proxy header) repeats on every call it carries.
        self._client_of = functools.lru_cache(maxsize=BUCKET_CACHE_SIZE)(self._client)

    def applies(self, method: str, info: MethodInfo | None) -> bool:
        # Health checks and reflection are outside the contract: never limited.
        return info is not None and info.policy.rate_limit_tier != options_pb2.RATE_LIMIT_TIER_EXEMPT

    async def around(self, call: Call, proceed: Proceed) -> Any:
        assert call.info is not None
        principal = current_principal()
        client = self._client_of(call.context.peer(), call.metadata(FORWARDED_FOR_HEADER))
        if self._allowlisted(principal, client):
            return await proceed()
        tier, identity = self._budget(call, call.info, principal, client)
        bucket, key = self._bucket_of(tier.name, identity)
        decision = await self._limiter.hit(key, tier.limit, tier.window_seconds)
        self._decisions(tier.name, "admitted" if decision.allowed else "refused").inc()
        add_response_metadata("x-ratelimit-limit", str(decision.limit))
        add_response_metadata("x-ratelimit-remaining", str(decision.remaining))
        add_response_metadata("x-ratelimit-reset", str(math.ceil(decision.reset_seconds)))
        if not decision.allowed:
            wait = decision.retry_after_seconds
            add_response_metadata("retry-after", str(wait))
            raise DomainError(
                Reason.RATE_LIMITED,
                f"rate limit of {tier.limit} calls exceeded; retry in {wait} s",
                metadata={"limit": str(tier.limit), "retry_after_seconds": str(wait), QUOTA_SUBJECT: bucket},
                retry_after_seconds=wait,
            )
        return await proceed()

    def _client(self, peer: str, forwarded_for: str | None) -> str:
        return client_address(peer, forwarded_for, self._trusted)

    def _bucket(self, tier_name: str, identity: str) -> tuple[str, str]:
        """The budget's name (hashed identity) and its Redis key."""
        digest = hashlib.blake2b(identity.encode(), key=self._hash_key, digest_size=16).hexdigest()
        bucket = f"{tier_name}:{digest}"
        return bucket, f"{self._prefix}:ratelimit:{{{bucket}}}"

    def _budget(self, call: Call, info: MethodInfo, principal: Principal, client: str) -> tuple[Tier, str]:
        tier = info.policy.rate_limit_tier
        caller = f"user:{principal.subject}" if principal.is_authenticated else f"ip:{client}"
        if tier == options_pb2.RATE_LIMIT_TIER_BOOKING_CREATE:
            return self._tiers.booking_create, caller
        if tier == options_pb2.RATE_LIMIT_TIER_WEBHOOK:
            # One budget per provider endpoint.
            return self._tiers.webhook, call.method
        if principal.role in (Role.ADMIN, Role.SERVICE):
            return self._tiers.admin, caller
        if principal.is_authenticated:
            return self._tiers.authenticated, caller
        return self._tiers.public, caller

    def _allowlisted(self, principal: Principal, client: str) -> bool:
        if principal.subject is not None and principal.subject in self._allowed_subjects:
            return True
        if not self._allowed_networks:
            return False
        address = _parse_ip(client)
        return address is not None and _is_trusted(address, self._allowed_networks)


def _is_network(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _networks_in(values: Sequence[str]) -> list[IpNetwork]:
    return [ipaddress.ip_network(value, strict=False) for value in values if _is_network(value)]
