"""Values that belong to one call: its trace id, its caller, and a provider's proof.

Interceptors set them inside the wrapped handler, so the servicer, the services it calls and
every log line of the call see them. A `ContextVar` is per task, so calls never share values.
"""

from __future__ import annotations

from contextvars import ContextVar

from services.principal import ANONYMOUS, Principal

trace_id_var: ContextVar[str] = ContextVar("trace_id", default="")
principal_var: ContextVar[Principal] = ContextVar("principal", default=ANONYMOUS)
# What a provider method's sender proved (its verified signature), set by the auth interceptor.
provider_proof_var: ContextVar[object | None] = ContextVar("provider_proof", default=None)


def current_trace_id() -> str:
    return trace_id_var.get()


def current_principal() -> Principal:
    return principal_var.get()


def current_provider_proof() -> object | None:
    return provider_proof_var.get()
