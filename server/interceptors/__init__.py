"""The edge: server interceptors configured per method by the contract's policy options.

Order matters (outermost first): response metadata is sent by the outermost, so it reaches the
caller whatever happens inside; the trace id is set before anything logs; metrics see the final
code; errors are mapped before metrics and metadata see them; the caller is known before its
rate-limit budget is chosen; the cache answers only admitted, authorized calls.
"""

from __future__ import annotations

from server.auth import Authenticator, authenticator_from
from server.interceptors.auth import AuthInterceptor
from server.interceptors.calls import ServerInterceptor
from server.interceptors.errors import ErrorInterceptor
from server.interceptors.metrics import MetricsInterceptor
from server.interceptors.response_metadata import ResponseMetadataInterceptor
from server.interceptors.trace import TraceInterceptor
from server.metrics import Metrics
from server.policy import PolicyTable
from server.settings import Settings


def build_interceptors(
    settings: Settings,
    policies: PolicyTable,
    metrics: Metrics,
    *,
    authenticator: Authenticator | None = None,
) -> list[ServerInterceptor]:
    """The interceptor chain of a server, in order."""
    chain: list[ServerInterceptor] = [
        ResponseMetadataInterceptor(policies),
        TraceInterceptor(policies),
        MetricsInterceptor(policies, metrics),
        ErrorInterceptor(policies),
        AuthInterceptor(policies, authenticator or authenticator_from(settings)),
    ]
    return chain
