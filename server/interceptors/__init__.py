"""The edge: server interceptors configured per method by the contract's policy options.

Order matters (outermost first): response metadata is sent by the outermost, so it reaches the
caller whatever happens inside; the trace id is set before anything logs; metrics see the final
code; errors are mapped before metrics and metadata see them; the caller is known before its
rate-limit budget is chosen; the cache answers only admitted, authorized calls.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio

from server.auth import Authenticator, authenticator_from
from server.cache import RedisCache
from server.interceptors.auth import AuthInterceptor, ProviderCheck
from server.interceptors.cache import CacheInterceptor
from server.interceptors.calls import ServerInterceptor
from server.interceptors.errors import ErrorInterceptor
from server.interceptors.metrics import MetricsInterceptor
from server.interceptors.rate_limit import RateLimitInterceptor, Tiers, parse_networks
from server.interceptors.request_text import RequestTextInterceptor
from server.interceptors.response_metadata import ResponseMetadataInterceptor
from server.interceptors.trace import TraceInterceptor
from server.metrics import Metrics
from server.policy import PolicyTable
from server.rate_limiter import LocalRateLimiter, RateLimiter
from server.redis_guard import RedisGuard
from server.settings import Settings


def build_interceptors(
    settings: Settings,
    policies: PolicyTable,
    metrics: Metrics,
    *,
    redis_client: redis.asyncio.Redis | None = None,
    authenticator: Authenticator | None = None,
    rate_limiter: RateLimiter | None = None,
    cache: RedisCache | None = None,
    providers: Mapping[str, ProviderCheck] | None = None,
) -> list[ServerInterceptor]:
    """The interceptor chain of a server, in order. Switched-off features add no interceptor."""
    chain: list[ServerInterceptor] = [
        ResponseMetadataInterceptor(policies),
        TraceInterceptor(policies),
        MetricsInterceptor(policies, metrics),
        ErrorInterceptor(policies),
        AuthInterceptor(policies, authenticator or authenticator_from(settings), providers),
    ]
    if settings.rate_limit_enabled:
        limiter = rate_limiter or build_rate_limiter(settings, redis_client, metrics)
        chain.append(
            RateLimitInterceptor(
                policies,
                limiter,
                metrics,
                tiers=Tiers.from_settings(settings),
                key_prefix=settings.redis_key_prefix,
                hash_key=hash_key_of(settings),
                trusted_proxies=parse_networks(settings.trusted_proxies),
                allowlist=settings.rate_limit_allowlist,
            )
        )
    if settings.cache_enabled:
        chain.append(
            CacheInterceptor(policies, cache or build_cache(settings, redis_client, metrics), metrics)
        )
    # Innermost: only text that reaches a servicer is judged (after auth and limits).
    chain.append(RequestTextInterceptor(policies))
    return chain


def build_cache(settings: Settings, redis_client: redis.asyncio.Redis | None, metrics: Metrics) -> RedisCache:
    """The cache of a process; also the services' change notifier (invalidation by tag)."""
    return RedisCache(
        redis_client,
        redis_guard("cache", settings, metrics),
        metrics,
        key_prefix=settings.redis_key_prefix,
        fill_wait_seconds=settings.cache_fill_wait_ms / 1000,
    )


def redis_guard(component: str, settings: Settings, metrics: Metrics) -> RedisGuard:
    return RedisGuard(component, metrics, timeout_seconds=settings.redis_timeout_ms / 1000)


def build_rate_limiter(
    settings: Settings, redis_client: redis.asyncio.Redis | None, metrics: Metrics
) -> RateLimiter:
    return RateLimiter(
        redis_client, redis_guard("rate_limit", settings, metrics), metrics, LocalRateLimiter()
    )


def hash_key_of(settings: Settings) -> bytes:
    """Key of the hashes in Redis keys: its own secret, else the JWT secret, else the key prefix."""
    secret = settings.key_hash_secret or settings.jwt_secret
    return (secret.get_secret_value() if secret is not None else settings.redis_key_prefix).encode()
