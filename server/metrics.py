"""Prometheus metrics of one application, in its own registry (injected, never the global one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.webhook_outcomes import Outcome

# Latency buckets in seconds: sub-millisecond cache hits up to slow database calls.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class PoolStats:
    size: int
    checked_out: int
    overflow: int


class _PoolCollector(Collector):
    def __init__(self, stats: Callable[[], PoolStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        family = GaugeMetricFamily(
            "exodrive_db_pool_connections", "Database pool connections by state", labels=["state"]
        )
        family.add_metric(["size"], stats.size)
        family.add_metric(["checked_out"], stats.checked_out)
        family.add_metric(["overflow"], stats.overflow)
        yield family


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.calls = Counter(
            "exodrive_grpc_calls", "gRPC calls by method and code", ["method", "code"], registry=r
        )
        self.latency = Histogram(
            "exodrive_grpc_call_seconds", "gRPC call latency", ["method"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.cache = Counter(
            "exodrive_cache_lookups", "Cache lookups by outcome", ["method", "outcome"], registry=r
        )
        self.cache_invalidations = Counter(
            "exodrive_cache_invalidations", "Invalidation batches by result", ["result"], registry=r
        )
        self.rate_limit = Counter(
            "exodrive_rate_limit_decisions", "Rate-limit decisions by tier", ["tier", "decision"], registry=r
        )
        self.rate_limit_fallbacks = Counter(
            "exodrive_rate_limit_fallbacks", "Decisions taken in process because Redis failed", registry=r
        )
        self.redis_errors = Counter(
            "exodrive_redis_errors", "Redis failures by component", ["component"], registry=r
        )
        self.webhook_refusals = Counter(
            "exodrive_webhook_refusals",
            "Webhook deliveries refused before storing (signature) by provider and cause",
            ["provider", "reason"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "exodrive_webhook_deliveries",
            "Verified webhook deliveries by provider and outcome (stored, duplicate, failed, ignored)",
            ["provider", "outcome"],
            registry=r,
        )
        self._pool_collector: _PoolCollector | None = None

    def track_db_pool(self, stats: Callable[[], PoolStats]) -> None:
        """Reports the database pool's usage at each scrape."""
        if self._pool_collector is not None:
            self.registry.unregister(self._pool_collector)
        self._pool_collector = _PoolCollector(stats)
        self.registry.register(self._pool_collector)


class WebhookMetrics:
    """The webhook service's outcomes (services.webhook_outcomes) as Prometheus counters."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def refused(self, provider: str, why: str) -> None:
        self._metrics.webhook_refusals.labels(provider, why).inc()

    def ingested(self, provider: str, outcome: Outcome) -> None:
        self._metrics.webhook_deliveries.labels(provider, outcome.value).inc()


def start_metrics_server(metrics: Metrics, port: int, host: str = "127.0.0.1") -> tuple[WSGIServer, Thread]:
    """Serves `/metrics` over HTTP on a daemon thread; `server.shutdown()` stops it."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server, thread
