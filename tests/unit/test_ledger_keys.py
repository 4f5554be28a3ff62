"""Reading the public keys an auditor trusts: what is accepted, and what is said otherwise."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.ledger.signing import key_id, load_public_key, load_public_keys, public_pem

KEYS = [Ed25519PrivateKey.generate().public_key() for _ in range(2)]


def test_a_key_is_read_from_text_or_bytes() -> None:
    pem = public_pem(KEYS[0])
    for given in (pem, pem.encode()):
        assert key_id(load_public_key(given)) == key_id(KEYS[0])


def test_a_keyring_holds_every_key_by_its_id() -> None:
    ring = "\n".join(public_pem(k) for k in KEYS)
    assert set(load_public_keys(f"two keys:\n{ring}\nend")) == {key_id(k) for k in KEYS}


def test_another_kind_of_key_is_refused_by_name() -> None:
    other = generate_private_key(SECP256R1()).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(ValueError, match=r"^not an Ed25519 public key$"):
        load_public_key(pem)
    with pytest.raises(ValueError, match=r"^not an Ed25519 public key$"):
        load_public_keys(pem)


def test_a_file_without_a_public_key_says_so() -> None:
    with pytest.raises(ValueError, match=r"^no PEM public key in it$"):
        load_public_keys("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
