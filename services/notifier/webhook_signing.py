"""Standard Webhooks signatures (symmetric ``v1`` and asymmetric ``v1a``), as a sender
produces them.

The scheme (standardwebhooks.com, spec 1.0.0, "Signature scheme"):

* the secret is presented as ``whsec_<base64>``; the HMAC key is the
  base64-decoded part after the prefix;
* the signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` — the id,
  the attempt's integer Unix timestamp and the exact body bytes sent;
* ``webhook-signature`` is ``v1,<base64 HMAC-SHA256>``; several signatures
  (during a secret rotation) are space-separated.

* asymmetric: ``v1a,<base64 Ed25519 signature>`` of the same content, with a
  key pair the spec serialises as ``whsk_<base64>`` (secret) and
  ``whpk_<base64>`` (public). The spec says "standard ed25519 key pair" and
  no more; we read ``whsk_`` as the 32-byte RFC 8032 private key (seed), or
  the 64 bytes seed ‖ public key that libsodium calls a secret key (its
  public half must then match), and write ``whpk_`` as the 32-byte raw public
  key. A receiver verifies with the public key alone: no shared secret.

The id is the same on every attempt of a message (receivers deduplicate on
it); the timestamp is the attempt's, so receivers can refuse replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
PRIVATE_KEY_PREFIX = "whsk_"
PUBLIC_KEY_PREFIX = "whpk_"
ASYMMETRIC_VERSION = "v1a"

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

MSG_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
"""Our ids: no ``.`` (the field separator of the signed content), header-safe."""


def _decoded(text: str, prefix: str, what: str) -> bytes:
    if not text.startswith(prefix):
        raise ValueError(f"a webhook {what} starts with {prefix!r}")
    encoded = text.removeprefix(prefix).rstrip("=")
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError(f"a webhook {what} is base64 after its prefix") from None
    if not raw:
        raise ValueError(f"a webhook {what} may not be empty")
    return raw


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret (unpadded base64 is accepted, like the libraries)."""
    return _decoded(secret, SECRET_PREFIX, "secret")


def private_key(text: str) -> Ed25519PrivateKey:
    """The Ed25519 key of a ``whsk_…`` signing key: 32 bytes (the seed), or 64 (seed ‖ public
    key, whose public half must match)."""
    raw = _decoded(text, PRIVATE_KEY_PREFIX, "signing key")
    if len(raw) not in (32, 64):
        raise ValueError("a whsk_ signing key is 32 bytes (or 64: seed and public key)")
    key = Ed25519PrivateKey.from_private_bytes(raw[:32])
    if len(raw) == 64 and raw[32:] != _raw_public(key):
        raise ValueError("the whsk_ signing key's public half is not its seed's")
    return key


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The ``whpk_…`` public key a receiver verifies ``v1a`` signatures with."""
    return PUBLIC_KEY_PREFIX + base64.b64encode(_raw_public(key)).decode("ascii")


def private_key_text(key: Ed25519PrivateKey) -> str:
    """The ``whsk_…`` form of a private key (its 32-byte seed)."""
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return PRIVATE_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def asymmetric_signature(key: Ed25519PrivateKey, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1a,<base64>`` signature of a message attempt."""
    if not MSG_ID.match(msg_id):
        raise ValueError(f"webhook id {msg_id!r} must be 1-255 of [A-Za-z0-9_-]")
    content = f"{msg_id}.{timestamp}.".encode() + body
    return f"{ASYMMETRIC_VERSION},{base64.b64encode(key.sign(content)).decode('ascii')}"


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of a message attempt."""
    if not MSG_ID.match(msg_id):
        raise ValueError(f"webhook id {msg_id!r} must be 1-255 of [A-Za-z0-9_-]")
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """:func:`signature` with the key taken from a ``whsec_…`` secret."""
    return signature(secret_key(secret), msg_id, timestamp, body)


def signed_headers(
    secrets: str | Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt (one signature per secret)."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("at least one secret is needed to sign")
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(sign(s, msg_id, timestamp, body) for s in keys),
    }


Signing = Callable[[str, int, bytes], str]
"""``(msg_id, timestamp, body) → webhook-signature header value`` of one endpoint."""


def endpoint_signing(secret: str | None, signing_key: str | None) -> Signing:
    """How one endpoint's attempts are signed: ``v1`` with its ``whsec_`` secret, ``v1a`` with
    its ``whsk_`` key, or both (space-separated, as during a move from one to the other); the
    keys are decoded once, here."""
    hmac_key = secret_key(secret) if secret else None
    ed_key = private_key(signing_key) if signing_key else None
    if hmac_key is None and ed_key is None:
        raise ValueError("an endpoint needs a secret (v1) or a signing_key (v1a)")

    def sign_attempt(msg_id: str, timestamp: int, body: bytes) -> str:
        # msg_id was checked when the job was made and again by the sender (MSG_ID)
        content = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
        parts = []
        if hmac_key is not None:
            digest = hmac.new(hmac_key, content, hashlib.sha256).digest()
            parts.append(f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}")
        if ed_key is not None:
            parts.append(
                f"{ASYMMETRIC_VERSION},{base64.b64encode(ed_key.sign(content)).decode('ascii')}"
            )
        return " ".join(parts)

    return sign_attempt
