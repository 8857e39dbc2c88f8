"""Bearer tokens: only well-signed, unexpired tokens with a subject and a known role pass."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from edge_harness import edge_server, metadata_of
from exodrive.v1 import fleet_pb2

from server.auth import Authenticator, mint_token
from server.interceptors import build_interceptors
from server.metrics import Metrics
from server.policy import PolicyTable
from server.settings import Settings
from services.errors import DomainError, Reason
from services.principal import Principal, Role

SECRET = "a-secret-that-is-long-enough-for-hs256-and-even-hs512-signing-0123"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "user-1", "role": "customer", "iat": now, "exp": now + 600} | overrides


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def expect_unauthenticated(authenticator: Authenticator, token: str) -> None:
    with pytest.raises(DomainError) as caught:
        await authenticator.principal(f"Bearer {token}", None)
    assert caught.value.reason is Reason.UNAUTHENTICATED


async def test_valid_hs256_token_gives_the_principal() -> None:
    authenticator = Authenticator(secret=SECRET)
    token = jwt.encode(claims(role="admin", sub="boss"), SECRET, "HS256")
    assert await authenticator.principal(f"Bearer {token}", "guest-tok") == Principal(
        Role.ADMIN, subject="boss", booking_token="guest-tok"
    )


async def test_no_token_is_anonymous_and_keeps_the_booking_token() -> None:
    principal = await Authenticator(secret=SECRET).principal(None, "guest-tok")
    assert principal == Principal(Role.ANONYMOUS, booking_token="guest-tok")


async def test_minted_token_verifies() -> None:
    token = mint_token(SECRET, role=Role.SERVICE, subject="mailer")
    assert await Authenticator(secret=SECRET).principal(f"Bearer {token}", None) == Principal(
        Role.SERVICE, subject="mailer"
    )


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(claims(exp=int(time.time()) - 120), SECRET, "HS256"),  # expired beyond leeway
        jwt.encode(claims(), "another-secret-that-is-also-long-enough", "HS256"),  # wrong signature
        jwt.encode(claims(), SECRET, "HS512"),  # right secret, algorithm not allowed
        jwt.encode(claims(), None, "none"),  # unsigned
        jwt.encode(claims(role="superuser"), SECRET, "HS256"),  # unknown role
        jwt.encode(claims(role="anonymous"), SECRET, "HS256"),  # not a token role
        jwt.encode({k: v for k, v in claims().items() if k != "exp"}, SECRET, "HS256"),  # no expiry
        jwt.encode({k: v for k, v in claims().items() if k != "sub"}, SECRET, "HS256"),  # no subject
        "not.a.jwt",
        "garbage",
    ],
    ids=[
        "expired",
        "wrong-signature",
        "hs512",
        "none",
        "bad-role",
        "anon-role",
        "no-exp",
        "no-sub",
        "dots",
        "junk",
    ],
)
async def test_bad_tokens_are_unauthenticated(token: str) -> None:
    await expect_unauthenticated(Authenticator(secret=SECRET), token)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "token abc"])
async def test_malformed_authorization_header(header: str) -> None:
    with pytest.raises(DomainError) as caught:
        await Authenticator(secret=SECRET).principal(header, None)
    assert caught.value.reason is Reason.UNAUTHENTICATED


def write_jwks(path: Path, key: rsa.RSAPrivateKey) -> Path:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "RS256", "use": "sig"})
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


async def test_jwks_file_accepts_rs256(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    authenticator = Authenticator(jwks=str(write_jwks(tmp_path / "jwks.json", rsa_key)))
    token = jwt.encode(claims(), rsa_key, "RS256", headers={"kid": "k1"})
    assert (await authenticator.principal(f"Bearer {token}", None)).subject == "user-1"


async def test_rs_hs_confusion_is_refused(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    """A token 'signed' with HS256 using the public key as the secret must not pass a JWKS verifier."""
    authenticator = Authenticator(jwks=str(write_jwks(tmp_path / "jwks.json", rsa_key)))
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import hashlib
    import hmac

    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = jwt.utils.base64url_encode(json.dumps(claims(role="admin")).encode())
    signing_input = header + b"." + payload
    signature = jwt.utils.base64url_encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest())
    forged = (signing_input + b"." + signature).decode()
    await expect_unauthenticated(authenticator, forged)
    # And the unsigned variant.
    await expect_unauthenticated(authenticator, jwt.encode(claims(), None, "none", headers={"kid": "k1"}))


async def test_hs_secret_refuses_rs256(rsa_key: rsa.RSAPrivateKey) -> None:
    await expect_unauthenticated(Authenticator(secret=SECRET), jwt.encode(claims(), rsa_key, "RS256"))


async def test_issuer_and_audience_are_checked() -> None:
    authenticator = Authenticator(secret=SECRET, issuer="exodrive", audience="api")
    good = jwt.encode(claims(iss="exodrive", aud="api"), SECRET, "HS256")
    assert (await authenticator.principal(f"Bearer {good}", None)).subject == "user-1"
    await expect_unauthenticated(authenticator, jwt.encode(claims(iss="other", aud="api"), SECRET, "HS256"))
    await expect_unauthenticated(
        authenticator, jwt.encode(claims(iss="exodrive", aud="web"), SECRET, "HS256")
    )


async def test_through_the_server(settings: Settings) -> None:
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    admin = mint_token(secret, role=Role.ADMIN, subject="boss")
    customer = mint_token(secret, role=Role.CUSTOMER, subject="cust")
    interceptors = build_interceptors(settings, PolicyTable(), Metrics())
    request = fleet_pb2.CreateCarRequest(car=fleet_pb2.Car(name="X"))
    async with edge_server(interceptors) as edge:
        created = await edge.fleet.CreateCar(request, metadata=(("authorization", f"Bearer {admin}"),))
        assert created.car.name == "X"
        for metadata, code in [
            ((), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", f"Bearer {customer}"),), grpc.StatusCode.PERMISSION_DENIED),
            ((("authorization", "Bearer nonsense"),), grpc.StatusCode.UNAUTHENTICATED),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await edge.fleet.CreateCar(request, metadata=metadata)
            assert caught.value.code() == code
            assert "x-trace-id" in metadata_of(caught.value)
        # A public method with a bad token is refused too: a client should learn its token is broken.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await edge.fleet.GetCar(
                fleet_pb2.GetCarRequest(car_id="c1"), metadata=(("authorization", "Bearer x"),)
            )
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
