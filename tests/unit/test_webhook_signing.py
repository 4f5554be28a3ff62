"""Standard Webhooks signing, webhook ids and the retry schedule, without I/O.

Signatures are checked against the ``standardwebhooks`` reference library
and the specification's published test vector, not against our own code.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.notifier import webhook_signing as signing
from services.notifier.webhook_queue import encode_body, redact_url, webhook_id
from services.notifier.webhook_retry import (
    RetryPolicy,
    backoff_delay,
    is_retryable_status,
    parse_retry_after,
)
from tests import factories

SECRET = "whsec_" + base64.b64encode(b"liaison-test-secret-32-bytes-ok!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-secret-for-rotation-tst").decode()


def _now() -> int:
    return int(time.time())


# --- signatures -------------------------------------------------------------------------------


def test_the_specifications_test_vector() -> None:
    # The vector of the reference libraries: secret, id, timestamp and body → signature.
    signature = signing.sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signed_headers_verify_with_the_reference_library() -> None:
    event = factories.alert()
    event["data"]["summary"] = "Гулистан: грузовик КамАЗ"  # non-ASCII body bytes
    body = encode_body(event)
    headers = signing.signed_headers(
        SECRET, webhook_id(event["source"], event["id"], "IMT-GULISTAN"), _now(), body
    )
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert Webhook(SECRET).verify(body, headers) == event


def test_a_tampered_body_or_another_secret_fails_verification() -> None:
    body = encode_body(factories.alert())
    headers = signing.signed_headers(SECRET, "msg_1", _now(), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"urgent", b"flash"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(body, headers)


def test_the_timestamp_is_signed() -> None:
    body = b'{"a":1}'
    headers = signing.signed_headers(SECRET, "msg_1", _now(), body)
    headers["webhook-timestamp"] = str(_now() - 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)


def test_one_signature_per_secret_during_a_rotation() -> None:
    body = b'{"a":1}'
    headers = signing.signed_headers([OTHER_SECRET, SECRET], "msg_1", _now(), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, OTHER_SECRET):
        Webhook(secret).verify(body, headers)


def test_unpadded_base64_secrets_are_accepted() -> None:
    padded = "whsec_" + base64.b64encode(b"0123456789abcdefghijklm").decode()  # 23 bytes: one '='
    assert padded.endswith("=")
    assert signing.secret_key(padded) == signing.secret_key(padded.rstrip("="))


@pytest.mark.parametrize(
    "secret", ["MfKQ9r8GKYqrTwjU", "whsec_", "whsec_!!notbase64!!", "whsec_==="]
)
def test_unusable_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        signing.secret_key(secret)


@pytest.mark.parametrize("msg_id", ["msg.1", "", "msg 1", "x" * 256])
def test_ids_that_would_break_the_signed_content_are_refused(msg_id: str) -> None:
    with pytest.raises(ValueError, match="webhook id"):
        signing.sign(SECRET, msg_id, 1, b"{}")


# --- webhook ids ------------------------------------------------------------------------------

OYBEK = "/units/BLO-OYBEK"


def test_webhook_ids_are_deterministic_readable_and_safe() -> None:
    first = webhook_id(OYBEK, "a1b2.c3/d4", "IMT-GULISTAN")
    assert first == webhook_id(OYBEK, "a1b2.c3/d4", "IMT-GULISTAN")
    assert first.startswith("msg_BLO-OYBEK_a1b2-c3-d4_IMT-GULISTAN_")
    assert "." not in first
    signing.sign(SECRET, first, 1, b"{}")  # accepted as an id


def test_ids_that_sanitise_alike_still_differ() -> None:
    assert webhook_id(OYBEK, "a.b", "IMT-GULISTAN") != webhook_id(OYBEK, "a-b", "IMT-GULISTAN")
    assert webhook_id(OYBEK, "a", "IMT-GULISTAN") != webhook_id(OYBEK, "a", "IMT-TASHKENT")


def test_two_units_events_of_one_id_have_two_webhook_ids() -> None:
    other = "/units/BLO-FOTEHOBOD"
    assert webhook_id(OYBEK, "BT-1", "NIAC-UZ") != webhook_id(other, "BT-1", "NIAC-UZ")


def test_long_event_ids_make_ids_within_the_limit() -> None:
    long_id = webhook_id(OYBEK, "x" * 1000, "IMT-GULISTAN")
    assert len(long_id) <= 255
    assert long_id != webhook_id(OYBEK, "x" * 999, "IMT-GULISTAN")


# --- the retry schedule -----------------------------------------------------------------------

POLICY = RetryPolicy(base_delay=2.0, max_delay=60.0, retry_after_cap=300.0)


def test_full_jitter_between_zero_and_a_doubling_ceiling() -> None:
    assert backoff_delay(POLICY, 1, rand=lambda: 0.0) == 0.0
    assert [backoff_delay(POLICY, n, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff_delay(POLICY, 3, rand=lambda: 0.5) == 4.0


def test_the_ceiling_is_capped_even_after_many_failures() -> None:
    assert backoff_delay(POLICY, 10, rand=lambda: 1.0) == 60.0
    assert backoff_delay(POLICY, 10_000, rand=lambda: 1.0) == 60.0


def test_retry_after_is_a_lower_bound_and_capped() -> None:
    assert backoff_delay(POLICY, 1, retry_after=30.0, rand=lambda: 0.1) == 30.0
    assert backoff_delay(POLICY, 6, retry_after=1.0, rand=lambda: 1.0) == 60.0
    assert backoff_delay(POLICY, 1, retry_after=86400.0, rand=lambda: 0.0) == 300.0
    assert backoff_delay(POLICY, 1, retry_after=0.0, rand=lambda: 0.25) == 0.5


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now.timestamp()) == 120.0
    assert parse_retry_after(" 0 ", now.timestamp()) == 0.0
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now.timestamp()) == 90.0
    earlier = format_datetime(now - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(earlier, now.timestamp()) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Thu, 99 Foo 2026"])
def test_unusable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, 0.0) is None


@pytest.mark.parametrize(
    ("status", "retry"),
    [(408, True), (429, True), (500, True), (502, True), (503, True), (504, True),
     (400, False), (401, False), (404, False), (410, False), (301, False)],
)  # fmt: skip
def test_which_statuses_are_retried(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


def test_urls_lose_credentials_and_query_before_they_are_recorded() -> None:
    assert (
        redact_url("https://user:pw@hooks.example:8443/in/liaison?token=s3cret#x")
        == "https://hooks.example:8443/in/liaison"
    )
    assert redact_url("http://[::1]:9000/h") == "http://[::1]:9000/h"


def test_the_body_is_compact_sorted_utf8_json() -> None:
    event = {"b": 1, "a": "Гулистан"}
    assert encode_body(event) == '{"a":"Гулистан","b":1}'.encode()
    assert json.loads(encode_body(event)) == event


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("whsec_abcd*efgh", "a webhook secret is base64 after its prefix"),  # lenient: valid
        ("whsec_=abcd", "a webhook secret is base64 after its prefix"),
        ("whsec_", "a webhook secret may not be empty"),
        ("whsec_==", "a webhook secret may not be empty"),
    ],
)
def test_a_secret_that_is_not_base64_is_refused(secret: str, reason: str) -> None:
    """Strict base64 (a lenient decoder would drop the stray characters and sign with
    another key), with or without its padding."""
    with pytest.raises(ValueError, match=f"^{reason}$"):
        signing.secret_key(secret)


def test_a_secret_ending_in_x_keeps_its_last_letter() -> None:
    assert signing.secret_key("whsec_AAAX") == b"\x00\x00\x17"


def test_a_secret_is_read_with_or_without_its_padding() -> None:
    padded = "whsec_" + base64.b64encode(b"sixteen-byte-key").decode()
    assert padded.endswith("=")
    assert (
        signing.secret_key(padded) == signing.secret_key(padded.rstrip("=")) == b"sixteen-byte-key"
    )


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match=r"^at least one secret is needed to sign$"):
        signing.signed_headers([], "msg_1", _now(), b"{}")


# --- asymmetric (v1a, Ed25519) ----------------------------------------------------------------

SEED = b"liaison-v1a-test-seed-32-bytes!!"
SIGNING_KEY = "whsk_" + base64.b64encode(SEED).decode()


def _v1a(header: str) -> list[bytes]:
    return [base64.b64decode(s[4:]) for s in header.split() if s.startswith("v1a,")]


def test_a_v1a_signature_verifies_with_the_public_key_as_the_specification_defines_it() -> None:
    # Independent of our code: the key from the seed with `cryptography`, the signed content
    # `msg_id.timestamp.payload` as the specification's "Signature scheme" defines it.
    public = Ed25519PrivateKey.from_private_bytes(SEED).public_key()
    body = encode_body(factories.alert())
    sign = signing.endpoint_signing(None, SIGNING_KEY)
    header = sign("msg_1", 1674087231, body)
    [signature] = _v1a(header)
    assert header.startswith("v1a,")
    assert " " not in header
    public.verify(signature, b"msg_1.1674087231." + body)  # raises if it does not verify
    with pytest.raises(InvalidSignature):
        public.verify(signature, b"msg_1.1674087232." + body)  # the timestamp is signed
    with pytest.raises(InvalidSignature):
        public.verify(signature, b"msg_1.1674087231." + body.replace(b"urgent", b"flash"))


def test_the_whpk_public_key_is_the_raw_key_in_base64() -> None:
    key = signing.private_key(SIGNING_KEY)
    whpk = signing.public_key_text(key)
    raw = base64.b64decode(whpk.removeprefix("whpk_"))
    assert whpk.startswith("whpk_")
    assert len(raw) == 32
    Ed25519PublicKey.from_public_bytes(raw).verify(
        _v1a(signing.endpoint_signing(None, SIGNING_KEY)("m", 1, b"x"))[0], b"m.1.x"
    )
    assert signing.private_key_text(key) == SIGNING_KEY


def test_a_64_byte_libsodium_secret_key_is_accepted_if_its_halves_match() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    raw_public = base64.b64decode(signing.public_key_text(key)[5:])
    sodium = "whsk_" + base64.b64encode(SEED + raw_public).decode()
    assert signing.private_key_text(signing.private_key(sodium)) == SIGNING_KEY
    mismatched = "whsk_" + base64.b64encode(SEED + bytes(32)).decode()
    with pytest.raises(ValueError, match="public half"):
        signing.private_key(mismatched)
    with pytest.raises(ValueError, match="32 bytes"):
        signing.private_key("whsk_" + base64.b64encode(b"short").decode())


def test_secret_and_signing_key_together_give_both_signatures_and_v1_still_verifies() -> None:
    # a receiver moving from the shared secret to the public key verifies either meanwhile;
    # the reference library (standardwebhooks 1.3, which has no v1a) still finds its v1
    body = encode_body(factories.alert())
    now = _now()
    header = signing.endpoint_signing(SECRET, SIGNING_KEY)("msg_1", now, body)
    assert [s.split(",")[0] for s in header.split()] == ["v1", "v1a"]
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": header}
    assert Webhook(SECRET).verify(body, headers) == json.loads(body)
    public = Ed25519PrivateKey.from_private_bytes(SEED).public_key()
    public.verify(_v1a(header)[0], f"msg_1.{now}.".encode() + body)


def test_endpoint_signing_matches_the_one_shot_v1_signature() -> None:
    body = b'{"a":1}'
    assert signing.endpoint_signing(SECRET, None)("msg_1", 5, body) == signing.sign(
        SECRET, "msg_1", 5, body
    )
    with pytest.raises(ValueError, match="secret"):
        signing.endpoint_signing(None, None)
