"""Prometheus metrics of one application, in its own registry (injected, never the global one),
and how a running server exposes them.

Exposure: `serve` answers on `metrics_port` (0 picks a free port, a negative value turns it off)
and on the gateway's `/metrics`, which shows the gateway's and the application's series together.
With `serve --workers N`, prometheus-client's multiprocess mode: every worker writes its samples
under `<data_dir>/metrics-<pid>` (PROMETHEUS_MULTIPROC_DIR), and whichever process answers a scrape
(the parent on `metrics_port`, any worker's gateway) reports all workers, aggregated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from server.settings import Settings
from services.webhook_outcomes import Outcome

# Latency buckets in seconds: sub-millisecond cache hits up to slow database calls.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class PoolStats:
    size: int
    checked_out: int
    overflow: int


class _BeforeScrape(Collector):
    """Refreshes the gauges that are read from their source rather than set as things happen."""

    def __init__(self, refresh: Callable[[], None]) -> None:
        self._refresh = refresh

    def collect(self) -> Iterator[Metric]:
        self._refresh()
        return iter(())


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # Registered first: a scrape collects in registration order, so the gauges read below
        # are refreshed before they are collected.
        self._pool_stats: Callable[[], PoolStats] | None = None
        r.register(_BeforeScrape(self.refresh))
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
        # Gauges say how to combine workers in multiprocess mode (ignored otherwise).
        self.db_pool = Gauge(
            "exodrive_db_pool_connections",
            "Database pool connections by state",
            ["state"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.redis_up = Gauge(
            "exodrive_redis_up",
            "1 while Redis answers the component (cache, rate_limit), 0 while it is bypassed",
            ["component"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.cache_pending_invalidations = Gauge(
            "exodrive_cache_pending_invalidations",
            "Cache tags whose invalidation failed and waits for Redis to be replayed",
            registry=r,
            multiprocess_mode="livesum",
        )

    def track_db_pool(self, stats: Callable[[], PoolStats]) -> None:
        """Reports the database pool's usage at each scrape."""
        self._pool_stats = stats

    def degradation(self) -> dict[str, object]:
        """Redis as this process's edge sees it, for readiness details (design §5: degradation is
        visible): reachable or not per component, and what was done without it so far."""
        components = {
            sample.labels["component"]: "up" if sample.value == 1 else "down"
            for family in self.redis_up.collect()
            for sample in family.samples
        }
        return {
            "redis": "down" if "down" in components.values() else "up",
            "components": components,
            "rateLimitFallbacks": int(_total(self.rate_limit_fallbacks)),
            "cacheBypasses": int(_total(self.cache, outcome="bypass")),
            "cachePendingInvalidations": int(_total(self.cache_pending_invalidations)),
        }

    def refresh(self) -> None:
        """Reads the gauges that have a source (the pool); a scrape does it first."""
        if self._pool_stats is not None:
            stats = self._pool_stats()
            self.db_pool.labels("size").set(stats.size)
            self.db_pool.labels("checked_out").set(stats.checked_out)
            self.db_pool.labels("overflow").set(stats.overflow)


class WebhookMetrics:
    """The webhook service's outcomes (services.webhook_outcomes) as Prometheus counters."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def refused(self, provider: str, why: str) -> None:
        self._metrics.webhook_refusals.labels(provider, why).inc()

    def ingested(self, provider: str, outcome: Outcome) -> None:
        self._metrics.webhook_deliveries.labels(provider, outcome.value).inc()


def _total(metric: Counter | Gauge, **labels: str) -> float:
    """The sum of a metric's samples (every label set matching `labels`)."""
    return sum(
        sample.value
        for family in metric.collect()
        for sample in family.samples
        if not sample.name.endswith("_created") and labels.items() <= sample.labels.items()
    )


def start_metrics_server(
    metrics: Metrics | Collector, port: int, host: str = "127.0.0.1"
) -> tuple[WSGIServer, Thread]:
    """Serves `/metrics` over HTTP on a daemon thread; `server.shutdown()` stops it."""
    registry = metrics.registry if isinstance(metrics, Metrics) else metrics
    server, thread = start_http_server(port, addr=host, registry=registry)
    return server, thread


# --- exposure of a running server -----------------------------------------------------------------

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# How often a worker refreshes its source-read gauges for the other processes' scrapes.
WORKER_REFRESH_SECONDS = 5.0

log = logging.getLogger(__name__)


def multiprocess_dir() -> Path | None:
    """The shared folder of multiprocess mode, when this process writes its samples there."""
    value = os.environ.get(MULTIPROCESS_ENV)
    return Path(value) if value else None


def exposition(*sources: Metrics | CollectorRegistry, shared_dir: Path | None = None) -> CollectorRegistry:
    """What a scrape shows: the sources' series; in multiprocess mode every process's samples from
    the shared folder instead (this process's own are among them, so the sources only refresh
    their gauges first)."""
    exposed = CollectorRegistry(auto_describe=False)
    shared_dir = shared_dir or multiprocess_dir()
    for source in sources:
        if shared_dir is None:
            exposed.register(source.registry if isinstance(source, Metrics) else source)
        elif isinstance(source, Metrics):
            exposed.register(_BeforeScrape(source.refresh))
    if shared_dir is not None:
        MultiProcessCollector(exposed, path=str(shared_dir))  # type: ignore[no-untyped-call]
    return exposed


class MetricsExposure:
    """The metrics port of one process (when it serves one) and a worker's gauge refresh loop."""

    def __init__(
        self,
        port: int | None = None,
        server: WSGIServer | None = None,
        thread: Thread | None = None,
        refresher: asyncio.Task[None] | None = None,
    ) -> None:
        self.port = port
        self._server = server
        self._thread = thread
        self._refresher = refresher

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


def _serve_port(
    registry: Collector, port: int, host: str
) -> tuple[WSGIServer | None, Thread | None, int | None]:
    if port < 0:
        return None, None, None
    try:
        server, thread = start_metrics_server(registry, port, host)
    except OSError as error:
        # Metrics are not worth failing the service for; the gateway's /metrics still has them.
        log.error("metrics port unavailable", extra={"port": port, "error": str(error)})
        return None, None, None
    return server, thread, int(server.server_port)


async def expose_metrics(metrics: Metrics, port: int, host: str) -> MetricsExposure:
    """`serve`'s metrics port. A worker of `--workers N` leaves the port to its parent and keeps
    its source-read gauges fresh in the shared folder instead."""
    if multiprocess_dir() is not None:
        return MetricsExposure(refresher=asyncio.create_task(_refresh_forever(metrics)))
    server, thread, bound = _serve_port(metrics.registry, port, host)
    if bound is not None:
        log.info("metrics served", extra={"metrics_url": f"http://{host}:{bound}/metrics"})
    return MetricsExposure(bound, server, thread)


async def _refresh_forever(metrics: Metrics) -> None:
    while True:
        metrics.refresh()
        await asyncio.sleep(WORKER_REFRESH_SECONDS)


def worker_metrics(settings: Settings) -> contextlib.AbstractContextManager[dict[str, str]]:
    """`serve --workers N`: see `multiprocess_metrics`, on the settings' data folder and port."""
    return multiprocess_metrics(settings.data_dir, settings.metrics_port, settings.host)


@contextlib.contextmanager
def multiprocess_metrics(data_dir: Path, port: int, host: str) -> Iterator[dict[str, str]]:
    """For the parent of `serve --workers N`: a fresh shared folder, the metrics port reporting
    every worker, and the environment that puts the workers in multiprocess mode."""
    shared = (data_dir / f"metrics-{os.getpid()}").resolve()
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir(parents=True)
    server, thread, bound = _serve_port(exposition(shared_dir=shared), port, host)
    if bound is not None:
        log.info("metrics served", extra={"metrics_url": f"http://{host}:{bound}/metrics", "workers": True})
    try:
        yield {MULTIPROCESS_ENV: str(shared)}
    finally:
        if server is not None and thread is not None:
            server.shutdown()
            server.server_close()
            thread.join(5)
        shutil.rmtree(shared, ignore_errors=True)
