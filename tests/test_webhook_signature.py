"""Svix / Standard Webhooks verification, checked with the official test vector."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from services.clock import FixedClock
from services.errors import Reason
from services.webhook_signature import InvalidSignatureError, SignatureVerifier

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SIGNED_AT = datetime.fromtimestamp(TIMESTAMP, tz=UTC)


def headers(
    msg_id: str = MSG_ID, timestamp: str = str(TIMESTAMP), signature: str = SIGNATURE
) -> dict[str, str]:
    return {"svix-id": msg_id, "svix-timestamp": timestamp, "svix-signature": signature}


def verifier(at: datetime = SIGNED_AT, secrets: tuple[str, ...] = (SECRET,)) -> SignatureVerifier:
    return SignatureVerifier(list(secrets), FixedClock(at))


def refused(v: SignatureVerifier, body: bytes, h: dict[str, str]) -> str:
    with pytest.raises(InvalidSignatureError) as caught:
        v.verify(body, h)
    assert caught.value.reason is Reason.INVALID_SIGNATURE
    return caught.value.why


def test_official_vector_passes_at_its_time() -> None:
    delivery = verifier().verify(BODY, headers())
    assert delivery.message_id == MSG_ID
    assert delivery.signed_at == SIGNED_AT


@pytest.mark.parametrize("offset", [timedelta(minutes=5), -timedelta(minutes=5)])
def test_vector_passes_at_the_tolerance_edge(offset: timedelta) -> None:
    assert verifier(SIGNED_AT + offset).verify(BODY, headers()).message_id == MSG_ID


@pytest.mark.parametrize("offset", [timedelta(minutes=5, seconds=1), -timedelta(minutes=5, seconds=1)])
def test_vector_fails_five_minutes_and_a_second_either_side(offset: timedelta) -> None:
    assert refused(verifier(SIGNED_AT + offset), BODY, headers()) == "stale_timestamp"


def test_one_changed_body_byte_is_refused() -> None:
    assert refused(verifier(), b'{"test": 2432232315}', headers()) == "no_match"


def test_trailing_newline_is_a_changed_body() -> None:
    assert refused(verifier(), BODY + b"\n", headers()) == "no_match"


def test_changed_id_is_refused() -> None:
    assert refused(verifier(), BODY, headers(msg_id="msg_p5jXN8AQM9LWM0D4loKWxJeK")) == "no_match"


def test_truncated_signature_is_refused() -> None:
    assert refused(verifier(), BODY, headers(signature=SIGNATURE[:-4])) == "no_match"


def test_v2_entry_alone_is_refused() -> None:
    assert refused(verifier(), BODY, headers(signature="v2" + SIGNATURE[2:])) == "no_match"


def test_any_v1_entry_may_match() -> None:
    other = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    signature = f"v2,garbage {other} nonsense {SIGNATURE}"
    assert verifier().verify(BODY, headers(signature=signature)).message_id == MSG_ID


def test_webhook_prefixed_headers_are_accepted() -> None:
    h = {"Webhook-Id": MSG_ID, "Webhook-Timestamp": str(TIMESTAMP), "Webhook-Signature": SIGNATURE}
    assert verifier().verify(BODY, h).message_id == MSG_ID


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_missing_header_is_refused(missing: str) -> None:
    h = headers()
    del h[missing]
    assert refused(verifier(), BODY, h) == "missing_headers"


@pytest.mark.parametrize("timestamp", ["abc", "1614265330.5", "-1614265330", "9" * 20])
def test_malformed_timestamp_is_refused(timestamp: str) -> None:
    assert refused(verifier(), BODY, headers(timestamp=timestamp)) == "bad_timestamp"


def test_rotated_secrets_any_of_them_verifies() -> None:
    new_secret = "whsec_" + base64.b64encode(b"a brand new secret of 32 bytes!!").decode()
    assert verifier(secrets=(new_secret, SECRET)).verify(BODY, headers()).message_id == MSG_ID
    assert refused(verifier(secrets=(new_secret,)), BODY, headers()) == "no_match"


def test_no_secret_configured_refuses_everything() -> None:
    assert refused(verifier(secrets=()), BODY, headers()) == "no_match"


def test_non_utf8_body_is_refused() -> None:
    assert refused(verifier(), b"\xff\xfe", headers()) == "body_not_utf8"


def test_signature_is_hmac_over_id_timestamp_and_raw_body() -> None:
    # Independent of the library: HMAC-SHA256 with the base64-decoded secret after `whsec_`.
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, f"{MSG_ID}.{TIMESTAMP}.".encode() + BODY, hashlib.sha256).digest()
    assert "v1," + base64.b64encode(digest).decode() == SIGNATURE
