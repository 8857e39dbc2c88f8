"""Counts every call by method and final code, and times it."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import grpc

from server.interceptors.calls import AroundInterceptor, Call, Proceed
from server.interceptors.response_metadata import StatusError
from server.metrics import Metrics
from server.policy import PolicyTable


class MetricsInterceptor(AroundInterceptor):
    def __init__(self, policies: PolicyTable, metrics: Metrics) -> None:
        super().__init__(policies)
        self._metrics = metrics
        # Label children looked up once per (method, code): methods come from the server's own
        # registry and codes are an enum, so these stay bounded.
        self._calls = functools.lru_cache(maxsize=None)(metrics.calls.labels)
        self._latency = functools.lru_cache(maxsize=None)(metrics.latency.labels)

    async def around(self, call: Call, proceed: Proceed) -> Any:
        start = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await proceed()
        except StatusError as failure:
            code = failure.code
            raise
        except grpc.aio.AbortError:
            code = call.context.code() or grpc.StatusCode.UNKNOWN
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self._calls(call.method, code.name).inc()
            self._latency(call.method).observe(time.perf_counter() - start)
