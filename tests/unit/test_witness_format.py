"""Witness cosignatures in C2SP's tlog-cosignature format (Ed25519, ``cosignature/v1``),
checked against bytes written out from the specification, not against our own code."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.ledger import witness

SEED = bytes(range(32))
NAME = "niac.uz/witness"
HEAD = hashlib.sha256(b"head").hexdigest()


def _key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SEED)


def _raw_public() -> bytes:
    return (
        _key().public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def test_a_cosignature_is_the_c2sp_note_signature_over_the_specified_message() -> None:
    made = witness.cosign(_key(), NAME, "exchange.niac.uz/ledger", (1200, HEAD), 1679315147)
    # the specification's bytes, written out by hand
    root = base64.b64encode(bytes.fromhex(HEAD)).decode()
    signed = f"cosignature/v1\ntime 1679315147\nexchange.niac.uz/ledger\n1200\n{root}\n".encode()
    key_id = hashlib.sha256(NAME.encode() + b"\n\x04" + _raw_public()).digest()[:4]
    raw = base64.b64decode(made.signature)
    assert raw[:4] == key_id
    assert raw[4:12] == struct.pack(">Q", 1679315147)
    _key().public_key().verify(raw[12:], signed)  # raises if it is not that message's signature
    assert made.line() == f"— {NAME} {made.signature}"
    assert made.note("exchange.niac.uz/ledger") == (
        f"exchange.niac.uz/ledger\n1200\n{root}\n\n— {NAME} {made.signature}\n"
    )


def test_the_vkey_is_name_key_id_and_typed_key_material() -> None:
    key = witness.WitnessKey(NAME, _key().public_key())
    name, hex_id, material = key.vkey().split("+", 2)
    assert name == NAME
    assert (
        bytes.fromhex(hex_id)
        == hashlib.sha256(NAME.encode() + b"\n\x04" + _raw_public()).digest()[:4]
    )
    assert base64.b64decode(material) == b"\x04" + _raw_public()
    assert witness.parse_vkey(key.vkey()) == key
    assert witness.load_witness_keys(f"# ours\n\n{key.vkey()}\n") == {NAME: key}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("niac.uz/witness", "<name>+<hex key id>+<base64 key>"),
        ("n+00000000+!!!", "base64"),
        ("n+00000000+" + base64.b64encode(b"\x01" + bytes(32)).decode(), "type 0x04"),
    ],
)
def test_malformed_vkeys_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("+", r"\+")):
        witness.parse_vkey(text)


def test_a_vkey_whose_id_does_not_match_its_key_is_refused() -> None:
    good = witness.WitnessKey(NAME, _key().public_key()).vkey()
    name, _id, material = good.split("+", 2)
    with pytest.raises(ValueError, match="key id does not match"):
        witness.parse_vkey(f"{name}+00000000+{material}")


def test_a_cosignature_verifies_only_for_its_origin_size_head_time_and_key() -> None:
    key = witness.WitnessKey(NAME, _key().public_key())
    made = witness.cosign(_key(), NAME, "a/ledger", (7, HEAD), 1000)
    assert made.valid("a/ledger", key)
    assert not made.valid("b/ledger", key)
    other_head = hashlib.sha256(b"other").hexdigest()
    for changed in (
        witness.Cosignature(NAME, 8, HEAD, 1000, made.signature),
        witness.Cosignature(NAME, 7, other_head, 1000, made.signature),
        witness.Cosignature(NAME, 7, HEAD, 1001, made.signature),
    ):
        assert not changed.valid("a/ledger", key)
    stranger = witness.WitnessKey(NAME, Ed25519PrivateKey.generate().public_key())
    assert not made.valid("a/ledger", stranger)


def test_a_note_reads_back_to_its_cosignatures() -> None:
    made = witness.cosign(_key(), NAME, "a/ledger", (7, HEAD), 1000)
    origin, [read] = witness.parse_note(made.note("a/ledger"))
    assert (origin, read) == ("a/ledger", made)
    with pytest.raises(ValueError, match="blank line"):
        witness.parse_note("a/ledger\n7\n")


def test_check_names_what_the_ledger_no_longer_matches() -> None:
    key = witness.WitnessKey(NAME, _key().public_key())
    at_5 = witness.cosign(_key(), NAME, "o", (5, HEAD), 1000)
    seen = witness.check([at_5], {NAME: key}, "o", {5: HEAD}, 9)
    assert (seen.upto, seen.problems) == ({NAME: at_5}, [])
    rewritten = witness.check([at_5], {NAME: key}, "o", {5: "0" * 64}, 9)
    assert rewritten.upto == {}
    assert rewritten.problems[0][0] == 5
    assert "rewritten or forked" in rewritten.problems[0][1]
    dropped = witness.check([at_5], {NAME: key}, "o", {}, 3)
    assert dropped.problems == [
        (
            4,
            f"witness {NAME} cosigned 5 entries, the ledger has 3: entries were dropped after it cosigned",
        )
    ]
    forged = witness.Cosignature(NAME, 5, HEAD, 1000, base64.b64encode(bytes(76)).decode())
    assert (
        "does not verify" in witness.check([forged], {NAME: key}, "o", {5: HEAD}, 9).problems[0][1]
    )
    assert witness.check([at_5], {}, "o", {5: HEAD}, 9).untrusted == 1
