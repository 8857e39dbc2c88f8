"""The gateway's Prometheus metrics, in a registry of their own (served at `/metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "exodrive_gateway_requests",
            "HTTP requests handled by the gateway, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "exodrive_gateway_request_duration_seconds",
            "Time from request to response in the gateway, upstream call included.",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=self.registry,
        )
        self.upstream_unavailable = Counter(
            "exodrive_gateway_upstream_unavailable",
            "Calls the gRPC upstream answered UNAVAILABLE (or could not be reached).",
            registry=self.registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
