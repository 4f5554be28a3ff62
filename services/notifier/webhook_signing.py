"""Standard Webhooks signatures (symmetric ``v1``), as a sender produces them.

The scheme (standardwebhooks.com, spec 1.0.0, "Signature scheme"):

* the secret is presented as ``whsec_<base64>``; the HMAC key is the
  base64-decoded part after the prefix;
* the signed content is ``{webhook-id}.{webhook-timestamp}.{body}`` — the id,
  the attempt's integer Unix timestamp and the exact body bytes sent;
* ``webhook-signature`` is ``v1,<base64 HMAC-SHA256>``; several signatures
  (during a secret rotation) are space-separated.

The id is the same on every attempt of a message (receivers deduplicate on
it); the timestamp is the attempt's, so receivers can refuse replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

MSG_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
"""Our ids: no ``.`` (the field separator of the signed content), header-safe."""


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret (unpadded base64 is accepted, like the libraries)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    encoded = secret.removeprefix(SECRET_PREFIX).rstrip("=")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is base64 after its prefix") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


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
