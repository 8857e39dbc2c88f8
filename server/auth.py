"""Bearer token verification (PyJWT): HS256 with the settings' secret, or keys from a JWKS.

The accepted algorithms follow the kind of key, never the token's header: a secret accepts only
HS256 and a JWKS only asymmetric algorithms, so `none` and RS/HS confusion fail. Tokens must be
signed, unexpired, and carry `sub` and a known `role`.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import jwt

from server.settings import Settings
from services.errors import DomainError, Reason
from services.principal import Principal, Role

ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
TOKEN_ROLES = {
    Role.ADMIN.value: Role.ADMIN,
    Role.CUSTOMER.value: Role.CUSTOMER,
    Role.SERVICE.value: Role.SERVICE,
}
# Tolerated clock difference between the token's issuer and us.
LEEWAY_SECONDS = 30


def unauthenticated(message: str = "invalid or expired token") -> DomainError:
    return DomainError(Reason.UNAUTHENTICATED, message)


class Authenticator:
    """Turns the `authorization` and `x-booking-token` metadata of a call into a Principal."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        jwks: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._jwk_set: jwt.PyJWKSet | None = None
        self._jwk_client: jwt.PyJWKClient | None = None
        if jwks is not None:
            if jwks.startswith(("http://", "https://")):
                self._jwk_client = jwt.PyJWKClient(jwks, cache_keys=True, lifespan=300)
            else:
                path = Path(jwks.removeprefix("file://"))
                self._jwk_set = jwt.PyJWKSet.from_dict(json.loads(path.read_text()))

    async def principal(self, authorization: str | None, booking_token: str | None) -> Principal:
        booking_token = booking_token or None
        if authorization is None:
            return Principal(Role.ANONYMOUS, booking_token=booking_token)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthenticated("authorization must be 'Bearer <token>'")
        claims = await self._claims(token.strip())
        subject = claims.get("sub")
        role = TOKEN_ROLES.get(str(claims.get("role", "")))
        if not isinstance(subject, str) or not subject or role is None:
            raise unauthenticated("token lacks a subject or a known role")
        return Principal(role, subject=subject, booking_token=booking_token)

    async def _claims(self, token: str) -> dict[str, Any]:
        try:
            key, algorithms = await self._key_for(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWTError:
            raise unauthenticated() from None
        return claims

    async def _key_for(self, token: str) -> tuple[Any, list[str]]:
        if self._jwk_client is not None:
            # The client fetches over blocking HTTP (and caches): keep it off the event loop.
            signing_key = await asyncio.to_thread(self._jwk_client.get_signing_key_from_jwt, token)
            return signing_key.key, ASYMMETRIC_ALGORITHMS
        if self._jwk_set is not None:
            kid = jwt.get_unverified_header(token).get("kid")
            for jwk in self._jwk_set.keys:
                if kid is None or jwk.key_id == kid:
                    return jwk.key, ASYMMETRIC_ALGORITHMS
            raise jwt.InvalidKeyError("no key for this token")
        if self._secret is not None:
            return self._secret, ["HS256"]
        raise jwt.InvalidKeyError("no verification key configured")


def mint_token(secret: str, *, role: Role, subject: str, ttl_seconds: int = 3600) -> str:
    """A development token signed with the HS256 secret (`exodrive token`)."""
    if role not in TOKEN_ROLES.values():
        raise ValueError(f"tokens carry one of {sorted(TOKEN_ROLES)}")
    now = int(time.time())
    return jwt.encode(
        {"sub": subject, "role": role.value, "iat": now, "exp": now + ttl_seconds}, secret, "HS256"
    )


def authenticator_from(settings: Settings) -> Authenticator:
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret is not None else None
    return Authenticator(
        secret=secret, jwks=settings.jwt_jwks_url, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
