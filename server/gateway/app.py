"""The HTTP/JSON gateway: an ASGI app that transcodes each request into a gRPC call.

Routes come from the contract's `google.api.http` rules (routes.py); this module reads the HTTP
request, calls the upstream and writes the protojson response or the error body.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
from google.protobuf import json_format, message
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.routing import request_response

from server.gateway.error_body import (
    UNAVAILABLE_RETRY_SECONDS,
    channel_error_document,
    domain_error_document,
    error_document,
    has_error_info,
)
from server.gateway.headers import (
    EXPOSED_HEADERS,
    HeadersTooLargeError,
    request_metadata,
    response_headers,
    timeout_of,
    trace_id_of,
)
from server.gateway.metrics import GatewayMetrics
from server.gateway.openapi import openapi_document
from server.gateway.routes import Route, RouteTable
from server.gateway.transcoder import build_request
from server.gateway.upstream import Upstream
from server.metrics import Metrics, exposition
from server.policy import PolicyTable
from server.settings import Settings
from services.errors import DomainError, Reason

log = logging.getLogger(__name__)

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
READINESS_SERVICE = "readiness"
_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ExoDrive API</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""


class PayloadTooLargeError(Exception):
    pass


def _json_response(status: int, body: Any, headers: dict[str, str]) -> Response:
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(content, status_code=status, headers=headers, media_type="application/json")


class Transcoding:
    """The catch-all endpoint: match a route, build the request, call upstream, render the answer."""

    def __init__(
        self,
        routes: RouteTable,
        upstream: Upstream,
        metrics: GatewayMetrics,
        *,
        max_body_bytes: int,
        default_timeout: float,
    ) -> None:
        self._routes = routes
        self._upstream = upstream
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self._default_timeout = default_timeout

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        trace_id = trace_id_of(request.headers)
        label = "unmatched"
        try:
            raw_path = request.scope.get("raw_path") or request.url.path.encode()
            matched = self._routes.match(request.method, raw_path.decode("latin-1").split("?", 1)[0])
            if isinstance(matched, list):
                response = self._no_route(matched, trace_id)
            else:
                route, path_values = matched
                label = route.template.template
                response = await self._forward(request, route, path_values, trace_id)
        except Exception:
            log.exception("gateway failure", extra={"trace_id": trace_id})
            status, body = error_document(grpc.StatusCode.INTERNAL, "internal error", [], trace_id)
            response = _json_response(status, body, {"X-Trace-Id": trace_id})
        self._metrics.observe(label, request.method, response.status_code, time.perf_counter() - started)
        return response

    def _no_route(self, allowed: list[str], trace_id: str) -> Response:
        headers = {"X-Trace-Id": trace_id}
        if allowed:
            headers["Allow"] = ", ".join(allowed)
            status, body = error_document(
                grpc.StatusCode.UNIMPLEMENTED, "method not allowed", [], trace_id, http_status=405
            )
            body["error"]["code"] = "METHOD_NOT_ALLOWED"
        else:
            status, body = error_document(grpc.StatusCode.NOT_FOUND, "no such route", [], trace_id)
        return _json_response(status, body, headers)

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body_bytes:
            raise PayloadTooLargeError
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body_bytes:
                raise PayloadTooLargeError
            chunks.append(chunk)
        return b"".join(chunks)

    async def _forward(
        self, request: Request, route: Route, path_values: dict[str, str], trace_id: str
    ) -> Response:
        try:
            peer = request.client.host if request.client else None
            metadata = request_metadata(request.headers.items(), peer, trace_id)
            body = await self._read_body(request) if route.body else b""
            timeout = timeout_of(request.headers, self._default_timeout)
            grpc_request = build_request(
                route,
                path_values,
                request.query_params.multi_items(),
                body,
                request.headers.get("content-type", ""),
            )
        except HeadersTooLargeError as too_large:
            # As Envoy and Go's net/http answer headers over their limit.
            status, document = domain_error_document(
                too_large, grpc.StatusCode.INVALID_ARGUMENT, trace_id, http_status=431
            )
            document["error"]["code"] = "REQUEST_HEADER_FIELDS_TOO_LARGE"
            return _json_response(status, document, {"X-Trace-Id": trace_id})
        except PayloadTooLargeError:
            error = DomainError(
                Reason.VALIDATION_ERROR,
                f"request body is larger than {self._max_body_bytes} bytes",
                metadata={"max_bytes": str(self._max_body_bytes)},
            )
            status, document = domain_error_document(
                error, grpc.StatusCode.INVALID_ARGUMENT, trace_id, http_status=413
            )
            document["error"]["code"] = "PAYLOAD_TOO_LARGE"
            return _json_response(status, document, {"X-Trace-Id": trace_id})
        except DomainError as error:
            status, document = domain_error_document(error, grpc.StatusCode.INVALID_ARGUMENT, trace_id)
            return _json_response(status, document, {"X-Trace-Id": trace_id})

        result = await self._upstream.call(route, grpc_request, metadata, timeout)
        headers = {"X-Trace-Id": trace_id, **response_headers(result.metadata)}
        if result.code != grpc.StatusCode.OK or result.response is None:
            if result.code == grpc.StatusCode.UNAVAILABLE:
                self._metrics.upstream_unavailable.inc()
            if has_error_info(result.details):
                status, document = error_document(
                    result.code, result.message, result.details, headers["X-Trace-Id"]
                )
            else:
                # Not the server's own error: the text names addresses and gRPC internals, so the
                # caller gets a generic one and the log the detail.
                log.warning(
                    "upstream call failed",
                    extra={
                        "trace_id": trace_id,
                        "method": route.grpc_path,
                        "code": result.code.name,
                        "detail": result.message,
                    },
                )
                status, document = channel_error_document(result.code, headers["X-Trace-Id"])
                if result.code == grpc.StatusCode.UNAVAILABLE:
                    headers.setdefault("Retry-After", str(UNAVAILABLE_RETRY_SECONDS))
            return _json_response(status, document, headers)
        return self._render(route, result.response, headers)

    def _render(self, route: Route, response: message.Message, headers: dict[str, str]) -> Response:
        status = 201 if route.is_creation else 200
        payload: Any = getattr(response, route.response_body) if route.response_body else response
        if route.answers_http_body:
            return Response(
                payload.data,
                status_code=status,
                headers=headers,
                media_type=payload.content_type or "application/octet-stream",
            )
        document = json_format.MessageToDict(payload, always_print_fields_with_no_presence=True)
        return _json_response(status, document, headers)


def create_gateway_app(
    settings: Settings,
    upstream_target: str,
    *,
    policies: PolicyTable | None = None,
    metrics: GatewayMetrics | None = None,
    application_metrics: Metrics | None = None,
) -> Starlette:
    """The gateway ASGI app forwarding to the gRPC server at `upstream_target` (HOST:PORT).

    Run beside the server (`serve`), it is given the application's metrics: `/metrics` then shows
    both registries (every worker's, in multiprocess mode) and `/readyz` the Redis degradation.
    """
    policies = policies if policies is not None else PolicyTable()
    metrics = metrics if metrics is not None else GatewayMetrics()
    routes = RouteTable(policies)
    upstream = Upstream(upstream_target)
    transcoding = Transcoding(
        routes,
        upstream,
        metrics,
        max_body_bytes=settings.gateway_max_body_bytes,
        default_timeout=settings.gateway_timeout_seconds,
    )
    document = openapi_document(routes)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        status = await upstream.health(READINESS_SERVICE, timeout=1.0)
        if status == grpc.StatusCode.NOT_FOUND.name:
            status = await upstream.health("", timeout=1.0)
        body: dict[str, object] = {"status": status}
        if application_metrics is not None:
            # Readiness follows PostgreSQL only; Redis being down degrades, it does not unready.
            body["details"] = application_metrics.degradation()
        return JSONResponse(body, status_code=200 if status == "SERVING" else 503)

    exposed = exposition(metrics.registry, *([application_metrics] if application_metrics else []))

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(exposed), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def docs(request: Request) -> Response:
        return HTMLResponse(_DOCS_PAGE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await upstream.close()

    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=ALL_METHODS,
            allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    ]
    app = Starlette(
        routes=[
            StarletteRoute("/healthz", healthz, methods=["GET"]),
            StarletteRoute("/readyz", readyz, methods=["GET"]),
            StarletteRoute("/metrics", metrics_endpoint, methods=["GET"]),
            StarletteRoute("/openapi.json", openapi, methods=["GET"]),
            StarletteRoute("/docs", docs, methods=["GET"]),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    # Everything else is transcoded. As the router's default rather than a `{path:path}` route,
    # since Starlette's path patterns stop at a newline and would answer with a plain-text 404.
    app.router.default = request_response(transcoding.handle)
    return app
