"""Witness cosignatures of the ledger's checkpoints, after C2SP ``tlog-cosignature`` (Ed25519,
``cosignature/v1``).

A witness is a second organisation with its own Ed25519 key. It checks that a checkpoint
extends the last one it cosigned (recomputing the hash chain between them), then signs:

    message   = "cosignature/v1\\n" "time <T>\\n" <note body>
    note body = "<origin>\\n" "<size>\\n" "<base64 of the 32-byte head hash>\\n"
    line      = "— <witness name> " base64( key_id[4] ‖ T as u64 big-endian ‖ Ed25519(message)[64] )
    key_id    = SHA-256( <witness name> ‖ "\\n" ‖ 0x04 ‖ raw public key )[:4]

exactly as C2SP specifies for a checkpoint whose root hash is our chain's head hash (the
ledger is a hash chain, not a Merkle tree: consistency is checked by recomputing the chain,
not with a Merkle proof). Any signed-note library can check the signature; a cosigned
checkpoint is written as a C2SP note (body, blank line, signature lines). Witness keys are
C2SP vkeys: ``<name>+<hex key id>+<base64(0x04 ‖ public key)>``.

What a cosignature proves: as of T, the witness saw the ledger's first ``size`` entries end
in that head, extending everything it cosigned before. An operator who later edits, drops
or forks entries up to ``size`` — even re-chaining and re-signing every checkpoint with the
operator's key — no longer matches it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.core.settings import DEFAULT_LEDGER_ORIGIN

HEADER = b"cosignature/v1\n"
ED25519_COSIGNATURE = 0x04
"""C2SP's signature type byte of an Ed25519 cosignature (key id and vkey)."""
DEFAULT_ORIGIN = DEFAULT_LEDGER_ORIGIN
ORIGIN = re.compile(r"^[\x21-\x7e]{1,200}$")
"""A checkpoint origin: printable ASCII, no space, one line."""
NAME = re.compile(r"^[\x21-\x2a\x2c-\x7e]{1,200}$")
"""A witness's key name: as an origin, without "+" (the vkey's separator)."""


def note_body(origin: str, size: int, head_hash: str) -> bytes:
    """The C2SP checkpoint body of the ledger's first ``size`` entries ending in ``head_hash``."""
    root = base64.b64encode(bytes.fromhex(head_hash)).decode("ascii")
    return f"{origin}\n{size}\n{root}\n".encode()


def message(timestamp: int, body: bytes) -> bytes:
    """The exact bytes an Ed25519 ``cosignature/v1`` signs."""
    return HEADER + b"time %d\n" % timestamp + body


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, key: Ed25519PublicKey) -> bytes:
    """C2SP key id of an Ed25519 cosigner."""
    return hashlib.sha256(
        name.encode() + b"\n" + bytes([ED25519_COSIGNATURE]) + _raw(key)
    ).digest()[:4]


@dataclass(frozen=True, slots=True)
class WitnessKey:
    """A witness's public key and name, as a verifier (or the ledger) trusts it."""

    name: str
    key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        """Its C2SP key id."""
        return key_id(self.name, self.key)

    def vkey(self) -> str:
        """The C2SP vkey text: ``name+hexid+base64(0x04 ‖ key)``."""
        material = base64.b64encode(bytes([ED25519_COSIGNATURE]) + _raw(self.key)).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"


def parse_vkey(text: str) -> WitnessKey:
    """A witness key from its C2SP vkey; ValueError saying what is wrong."""
    parts = text.strip().split("+", 2)  # base64 may hold "+", a name may not
    if len(parts) != 3 or not NAME.match(parts[0]):
        raise ValueError("a witness key is a vkey: <name>+<hex key id>+<base64 key>")
    name, hex_id, rest = parts
    try:
        material = base64.b64decode(rest, validate=True)
    except binascii.Error:
        raise ValueError("a witness vkey ends in base64") from None
    if len(material) != 33 or material[0] != ED25519_COSIGNATURE:
        raise ValueError("a witness vkey holds type 0x04 and a 32-byte Ed25519 key")
    found = WitnessKey(name, Ed25519PublicKey.from_public_bytes(material[1:]))
    if found.key_id.hex() != hex_id.lower():
        raise ValueError(f"witness vkey {name}: its key id does not match its key")
    return found


def load_witness_keys(text: str) -> dict[str, WitnessKey]:
    """Every vkey in a text (one a line; ``#`` comments and blank lines skipped), by name."""
    keys: dict[str, WitnessKey] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                found = parse_vkey(line)
            except ValueError as exc:
                raise ValueError(f"line {number}: {exc}") from None
            keys[found.name] = found
    if not keys:
        raise ValueError("no witness vkey in it")
    return keys


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One witness's cosignature of the ledger's first ``size`` entries."""

    witness: str
    size: int
    head_hash: str
    timestamp: int
    signature: str
    """base64 of key id ‖ timestamp ‖ Ed25519 signature: the C2SP note signature's bytes."""

    def line(self) -> str:
        """The C2SP note signature line."""
        return f"— {self.witness} {self.signature}"

    def note(self, origin: str) -> str:
        """The cosigned checkpoint as a C2SP note (body, blank line, this signature)."""
        return note_body(origin, self.size, self.head_hash).decode() + "\n" + self.line() + "\n"

    def valid(self, origin: str, key: WitnessKey) -> bool:
        """Whether ``key`` made it, over this origin, size, head and time."""
        try:
            raw = base64.b64decode(self.signature, validate=True)
        except binascii.Error:
            return False
        if len(raw) != 76 or raw[:4] != key.key_id or key.name != self.witness:
            return False
        if struct.unpack(">Q", raw[4:12])[0] != self.timestamp:
            return False
        body = note_body(origin, self.size, self.head_hash)
        try:
            key.key.verify(raw[12:], message(self.timestamp, body))
        except InvalidSignature:
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        """JSON form (bundles, the database row, the witness's state)."""
        return {
            "witness": self.witness,
            "size": self.size,
            "head_hash": self.head_hash,
            "timestamp": self.timestamp,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Cosignature:
        """The inverse of :meth:`to_dict`; ValueError if malformed."""
        try:
            found = cls(
                str(doc["witness"]),
                int(doc["size"]),
                str(doc["head_hash"]),
                int(doc["timestamp"]),
                str(doc["signature"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a cosignature: {exc!r}") from None
        if not re.fullmatch(r"[0-9a-f]{64}", found.head_hash) or found.size < 1:
            raise ValueError("not a cosignature: size ≥ 1 and a 64-hex head hash")
        return found


def cosign(
    private_key: Ed25519PrivateKey, name: str, origin: str, head: tuple[int, str], timestamp: int
) -> Cosignature:
    """The witness's cosignature of ``head`` (size, head hash) of the ledger ``origin``."""
    size, head_hash = head
    body = note_body(origin, size, head_hash)
    signed = private_key.sign(message(timestamp, body))
    raw = key_id(name, private_key.public_key()) + struct.pack(">Q", timestamp) + signed
    return Cosignature(name, size, head_hash, timestamp, base64.b64encode(raw).decode("ascii"))


def parse_note(text: str) -> tuple[str, list[Cosignature]]:
    """``(origin, cosignatures)`` of a cosigned checkpoint note; ValueError if malformed.

    Signature lines are ``— <name> <base64>``; the timestamp is read from the signature
    bytes (whose validity :meth:`Cosignature.valid` decides).
    """
    body, sep, signatures = text.partition("\n\n")
    lines = body.split("\n")
    if not sep or len(lines) < 3:
        raise ValueError("not a cosigned checkpoint: origin, size, root, a blank line, signatures")
    origin, size_text, root = lines[:3]
    try:
        size, head = int(size_text), base64.b64decode(root, validate=True).hex()
    except (ValueError, binascii.Error):
        raise ValueError("not a cosigned checkpoint: the size or the root is malformed") from None
    found = []
    for line in filter(None, signatures.split("\n")):
        dash, _, rest = line.partition(" ")
        name, _, encoded = rest.partition(" ")
        if dash != "—" or not name or not encoded:
            raise ValueError(f"not a note signature line: {line[:80]!r}")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"note signature of {name}: not base64") from None
        if len(raw) != 76:
            continue  # not an Ed25519 cosignature (the log's own signature, another type)
        timestamp = struct.unpack(">Q", raw[4:12])[0]
        found.append(Cosignature(name, size, head, timestamp, encoded))
    return origin, found


@dataclass(slots=True)
class Witnessed:
    """What the cosignatures of the verifier's trusted witnesses say about a ledger."""

    upto: dict[str, Cosignature]
    """Per trusted witness, its valid cosignature of the largest size."""
    problems: list[tuple[int, str]]
    """``(seq, problem)``: a cosignature the ledger no longer matches, or a forged one."""
    untrusted: int = 0
    """Cosignatures by witnesses the verifier does not trust (not checked)."""


def check(
    cosignatures: Iterable[Cosignature],
    keys: Mapping[str, WitnessKey],
    origin: str,
    heads: Mapping[int, str],
    count: int,
) -> Witnessed:
    """Hold the ledger to the cosignatures of the witnesses in ``keys``.

    ``heads``: the (verified) entry hash at each cosigned size the ledger has; ``count``: its
    entries. A cosignature that verifies but whose size the ledger no longer reaches, or whose
    head differs from the ledger's entry there, means the ledger was truncated, rewritten or
    forked after the witness cosigned; one naming a trusted witness that does not verify is a
    forgery.
    """
    result = Witnessed({}, [])
    for c in cosignatures:
        key = keys.get(c.witness)
        if key is None:
            result.untrusted += 1
            continue
        if not c.valid(origin, key):
            result.problems.append(
                (c.size, f"a cosignature of witness {c.witness} does not verify with its key")
            )
            continue
        if c.size > count:
            result.problems.append(
                (
                    count + 1,
                    f"witness {c.witness} cosigned {c.size} entries, the ledger has {count}: "
                    "entries were dropped after it cosigned",
                )
            )
            continue
        if heads.get(c.size) != c.head_hash:
            result.problems.append(
                (
                    c.size,
                    f"differs from what witness {c.witness} cosigned at {c.size} entries: the "
                    "ledger was rewritten or forked after it cosigned",
                )
            )
            continue
        best = result.upto.get(c.witness)
        if best is None or c.size > best.size:
            result.upto[c.witness] = c
    return result
