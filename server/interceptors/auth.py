"""Authentication and per-method access, as the contract's `(exodrive.v1.policy).access` says.

Ownership of a booking is not decided here: the service checks it, and row level security again.
Methods outside the contract (health, reflection) need no credentials.
"""

from __future__ import annotations

from typing import Any

from exodrive.v1 import options_pb2

from server.auth import Authenticator
from server.interceptors.calls import AroundInterceptor, Call, Proceed
from server.policy import MethodInfo, PolicyTable
from server.request_context import principal_var
from services.errors import DomainError, Reason
from services.principal import Principal

AUTHORIZATION_HEADER = "authorization"
BOOKING_TOKEN_HEADER = "x-booking-token"  # noqa: S105 (a header name)


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
    def __init__(self, policies: PolicyTable, authenticator: Authenticator) -> None:
        super().__init__(policies)
        self._authenticator = authenticator

    def applies(self, method: str, info: MethodInfo | None) -> bool:
        return info is not None

    async def around(self, call: Call, proceed: Proceed) -> Any:
        assert call.info is not None
        principal = await self._authenticator.principal(
            call.metadata(AUTHORIZATION_HEADER), call.metadata(BOOKING_TOKEN_HEADER)
        )
        check_access(call.info.access, principal)
        token = principal_var.set(principal)
        try:
            return await proceed()
        finally:
            principal_var.reset(token)
