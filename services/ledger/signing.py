"""The ledger's Ed25519 signing key: kept in a file, never in the database.

Checkpoints are signed over a fixed text (see :func:`checkpoint_message`),
so anyone with the public key can check them with any Ed25519 library.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE = "ledger-signing-key.pem"


def checkpoint_message(size: int, head_hash: str, signed_at: str) -> bytes:
    """The exact bytes a version 1 checkpoint's signature covers (v2: :mod:`checkpoints`)."""
    return f"liaison-ledger-checkpoint/v1\n{size}\n{head_hash}\n{signed_at}\n".encode()


def public_pem(key: Ed25519PublicKey) -> str:
    """SubjectPublicKeyInfo PEM, the exportable form."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """Short fingerprint: first 16 hex digits of SHA-256 of the raw public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """Parse a public key exported with :func:`public_pem`."""
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def load_public_keys(pem: str) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 public key in a PEM text (a keyring: one or more keys), by key id."""
    blocks = re.findall(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", pem, re.DOTALL)
    if not blocks:
        raise ValueError("no PEM public key in it")
    return {key_id(key): key for key in map(load_public_key, blocks)}


def signature_valid(key: Ed25519PublicKey, message: bytes, signature_hex: str) -> bool:
    """Whether ``signature_hex`` is ``key``'s signature of ``message``."""
    try:
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs checkpoints with the ledger's private key."""

    private_key: Ed25519PrivateKey
    record_path: Path | None = None
    """Where the last checkpoint signed is recorded, beside the key (None: nowhere)."""

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The key auditors verify with."""
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        """Fingerprint of the public key."""
        return key_id(self.public_key)

    def sign(self, message: bytes) -> str:
        """Hex Ed25519 signature."""
        return self.private_key.sign(message).hex()


def record_path(key_path: Path) -> Path:
    """Where the signer records its last checkpoint: beside the key, ``<key>.last-checkpoint.json``."""
    return key_path.with_name(f"{key_path.stem}.last-checkpoint.json")


def load_or_create_signer(path: Path) -> Signer:
    """Read the PEM private key at ``path``, creating it (mode 0600) on first use."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        return Signer(key, record_path(path))
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return Signer(key, record_path(path))
