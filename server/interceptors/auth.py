"""Authentication and per-method access, as the contract's `(exodrive.v1.policy).access` says.

Ownership of a booking is not decided here: the service checks it, and row level security again.
Methods outside the contract (health, reflection) need no credentials.

A provider method (ACCESS_PROVIDER, e.g. Resend's webhook) is called with the provider's request
signature instead of a token: the method's check (the service's own verifier, injected) proves it
over the signed raw body here, before the rate limiter, so only proven deliveries spend the
provider's budget. The proof is handed to the servicer (`current_provider_proof`), which then
does not verify again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from exodrive.v1 import options_pb2
from google.protobuf.message import Message

from server.auth import Authenticator
from server.interceptors.calls import AroundInterceptor, Call, Proceed
from server.policy import MethodInfo, PolicyTable
from server.request_context import principal_var, provider_proof_var
from services.errors import DomainError, Reason
from services.principal import Principal

AUTHORIZATION_HEADER = "authorization"
BOOKING_TOKEN_HEADER = "x-booking-token"  # noqa: S105 (a header name)
# Metadata a provider signs with (Svix and Standard Webhooks names).
SIGNATURE_HEADER_PREFIXES = ("svix-", "webhook-")
HTTP_BODY_TYPE = "google.api.HttpBody"

# (raw body, signature headers) -> proof; raises a DomainError when the sender is not the provider.
ProviderCheck = Callable[[bytes, Mapping[str, str]], object]


def signature_headers(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    return {
        key: value
        for key, value in metadata or ()
        if key.startswith(SIGNATURE_HEADER_PREFIXES) and isinstance(value, str)
    }


def signed_body(request: Message | None) -> bytes | None:
    """The raw bytes a provider signed: the request's `google.api.HttpBody` field."""
    if request is None:
        return None
    for field in request.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.full_name == HTTP_BODY_TYPE:
            data: bytes = getattr(request, field.name).data
            return data
    return None


def check_access(access: options_pb2.Access.ValueType, principal: Principal) -> None:
    """Raises UNAUTHENTICATED when credentials would help, PERMISSION_DENIED when they would not."""
    if access in (options_pb2.ACCESS_PUBLIC, options_pb2.ACCESS_PROVIDER):
        return
    if not principal.is_authenticated:
        raise DomainError(Reason.UNAUTHENTICATED, "this method requires a bearer token")
    if access == options_pb2.ACCESS_AUTHENTICATED or principal.is_staff:
        return
    raise DomainError(Reason.PERMISSION_DENIED, "this method is for admins")


class AuthInterceptor(AroundInterceptor):
    def __init__(
        self,
        policies: PolicyTable,
        authenticator: Authenticator,
        providers: Mapping[str, ProviderCheck] | None = None,
    ) -> None:
        super().__init__(policies)
        self._authenticator = authenticator
        self._providers = dict(providers or {})

    def applies(self, method: str, info: MethodInfo | None) -> bool:
        return info is not None

    async def around(self, call: Call, proceed: Proceed) -> Any:
        assert call.info is not None
        principal = await self._authenticator.principal(
            call.metadata(AUTHORIZATION_HEADER), call.metadata(BOOKING_TOKEN_HEADER)
        )
        check_access(call.info.access, principal)
        proof = self._prove_provider(call) if call.info.access == options_pb2.ACCESS_PROVIDER else None
        token = principal_var.set(principal)
        proof_token = provider_proof_var.set(proof)
        try:
            return await proceed()
        finally:
            provider_proof_var.reset(proof_token)
            principal_var.reset(token)

    def _prove_provider(self, call: Call) -> object:
        check = self._providers.get(call.method)
        body = signed_body(call.request)
        if check is None or body is None:
            # Fail closed: a provider method nobody can verify admits no one.
            raise DomainError(Reason.INVALID_SIGNATURE, "this method requires the provider's signature")
        return check(body, signature_headers(call.invocation_metadata))
