"""Publisher signatures: the CloudEvents Verifiability extension (DSSE v1.0.2, Ed25519) with
Liaison's profile. The exact bytes are in docs/provenance.md; in short::

    H(x)  = SHA-256(x);  an absent attribute is H(b"")
    DATA  = JCS(sd(data))                        RFC 8785 bytes of data in its signed form
    CORE  = H(H(id)|H(source)|H(specversion)|H(type)|H(datacontenttype)|H(dataschema)
              |H(subject)|H(UTC-seconds(time)+"Z")|H(DATA))
    EXT   = H(H(tlp)|H(releasableto)|H(piireleasableto))
    VM    = JSON {"core": B64(CORE), "ext": B64(EXT), "signedextattrs": [...]}
    sig   = Ed25519(PAE("https://cloudevents.io/verifiability/dsse/v0.1", VM))
    dssematerial = B64(JSON DSSE envelope {"payload": B64(VM), "payloadType", "signatures"})

``sd(data)``: persons are signed as salted digests (RFC 9901 array disclosures), so the
non-nominal view, which drops the persons, still verifies: ``data.persons[i]`` becomes
``{"...": B64URL(H(D_i))}`` with ``D_i = B64URL(JCS([B64URL(salt_i), person_i]))``, and
``"_sd_alg": "sha-256"`` is added. An event carries ``D_1~D_2~…`` in ``piidisclosures``
(full view) or the digests ``d_1~d_2~…`` in ``piidigests`` (non-nominal view, with
``persons_count``); both are unsigned attributes whose every part is checked through the
signed digests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.core.jcs import NotCanonicalisable, canonical

PAYLOAD_TYPE = "https://cloudevents.io/verifiability/dsse/v0.1"
CORE_ATTRIBUTES = (
    "id",
    "source",
    "specversion",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
)
SIGNED_EXTENSIONS = ("tlp", "releasableto", "piireleasableto")
"""The handling attributes: Liaison signs them and refuses a signature that leaves one out."""
_EMPTY = hashlib.sha256(b"").digest()
SD_ALG = "sha-256"
SALT_BYTES = 16  # RFC 9901 §9.3: at least 128 bits


class SignatureInvalid(ValueError):
    """The event's signature does not hold; ``field`` says where, the message why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def b64(raw: bytes) -> str:
    """Standard Base64 with padding (DSSE, the verification material)."""
    return base64.b64encode(raw).decode()


def b64url(raw: bytes) -> str:
    """Base64url without padding (RFC 9901 disclosures and digests)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str, field: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise SignatureInvalid(field, f"{what} is not Base64") from None


def _unb64url(text: str, field: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SignatureInvalid(field, f"{what} is not Base64url") from None


def public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo) or Base64 of its 32 raw bytes;
    ValueError naming what is wrong."""
    if "-----BEGIN" in text:
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError:
            raise ValueError("not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("neither PEM nor Base64 of 32 raw bytes") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def raw_b64(key: Ed25519PublicKey) -> str:
    """Base64 of a public key's 32 raw bytes (how the key registry writes it)."""
    return b64(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1.0.2 pre-authentication encoding: the bytes the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def utc_seconds(value: str) -> str:
    """An RFC 3339 time as the spec hashes it: UTC, whole seconds, ``Z``."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def disclosure(salt: bytes, person: Any) -> str:
    """``D = B64URL(JCS([B64URL(salt), person]))``."""
    return b64url(canonical([b64url(salt), person]))


def digest_of(disclosed: str) -> str:
    """``B64URL(SHA-256(ASCII(D)))``: what the signed data holds for a person."""
    return b64url(hashlib.sha256(disclosed.encode("ascii")).digest())


def signed_data(event: dict[str, Any]) -> Any:
    """``sd(data)`` of an event in either view (full with ``piidisclosures``, non-nominal
    with ``piidigests``); :class:`SignatureInvalid` when a disclosure does not match."""
    data = event.get("data")
    if not isinstance(data, dict):
        return data
    if "persons" in data:
        persons = data["persons"]
        parts = _parts(event.get("piidisclosures"), "piidisclosures")
        if not isinstance(persons, list) or len(parts) != len(persons):
            raise SignatureInvalid(
                "piidisclosures", "one disclosure per person of data.persons is needed"
            )
        digests = []
        for i, (person, disclosed) in enumerate(zip(persons, parts, strict=True)):
            shown = _disclosed_value(disclosed, i)
            if canonical(shown) != canonical(person):
                raise SignatureInvalid(f"data.persons.{i}", "differs from its signed disclosure")
            digests.append(digest_of(disclosed))
        rest = {k: v for k, v in data.items() if k != "persons"}
    elif "persons_count" in data:
        digests = _parts(event.get("piidigests"), "piidigests")
        if len(digests) != data["persons_count"]:
            raise SignatureInvalid("piidigests", "one digest per withheld person is needed")
        rest = {k: v for k, v in data.items() if k != "persons_count"}
    else:
        return data
    return rest | {"persons": [{"...": d} for d in digests], "_sd_alg": SD_ALG}


def _parts(text: Any, field: str) -> list[str]:
    if text is None or text == "":
        return []
    if not isinstance(text, str):
        raise SignatureInvalid(field, "must be a string of parts joined by '~'")
    return text.split("~")


def _disclosed_value(disclosed: str, index: int) -> Any:
    field = f"piidisclosures.{index}"
    try:
        doc = json.loads(_unb64url(disclosed, field, "the disclosure"))
    except (ValueError, UnicodeDecodeError):
        raise SignatureInvalid(field, "the disclosure is not JSON") from None
    if not (isinstance(doc, list) and len(doc) == 2 and isinstance(doc[0], str)):
        raise SignatureInvalid(field, "a disclosure is [salt, person]")
    return doc[1]


def _attribute(event: dict[str, Any], name: str) -> bytes:
    value = event.get(name)
    if value is None:
        return _EMPTY
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | str):
        text = str(value)
    else:
        raise SignatureInvalid(name, "not a CloudEvents attribute value that can be signed")
    if name == "time":
        try:
            text = utc_seconds(text)
        except ValueError:
            raise SignatureInvalid("time", "not an RFC 3339 time") from None
    return hashlib.sha256(text.encode()).digest()


def core_digest(event: dict[str, Any], data_bytes: bytes | None = None) -> bytes:
    """CORE of an event; ``data`` as JCS of :func:`signed_data` unless ``data_bytes`` is given
    (the spec's own test vectors hash the data's raw bytes)."""
    if data_bytes is None:
        try:
            data_bytes = b"" if event.get("data") is None else canonical(signed_data(event))
        except NotCanonicalisable as exc:
            raise SignatureInvalid("data", str(exc)) from None
    parts = b"".join(_attribute(event, name) for name in CORE_ATTRIBUTES)
    return hashlib.sha256(parts + hashlib.sha256(data_bytes).digest()).digest()


def ext_digest(event: dict[str, Any], names: list[str]) -> bytes:
    """EXT over the named extension attributes, in that order."""
    return hashlib.sha256(b"".join(_attribute(event, name) for name in names)).digest()


def material(event: dict[str, Any], names: tuple[str, ...] = SIGNED_EXTENSIONS) -> bytes:
    """The verification material (VM) of an event: the JSON the signature covers."""
    doc: dict[str, Any] = {"core": b64(core_digest(event))}
    if names:
        doc |= {"ext": b64(ext_digest(event, list(names))), "signedextattrs": list(names)}
    return json.dumps(doc, separators=(",", ":")).encode()


def sign(event: dict[str, Any], key: Ed25519PrivateKey, keyid: str) -> dict[str, Any]:
    """``event`` signed: persons turned into disclosures with fresh salts (``piidisclosures``)
    and ``dssematerial`` set. The event must already be in the exchange's canonical form
    (``liaison sign`` makes it so): the signature covers exactly what is stored."""
    signed = {k: v for k, v in event.items() if k not in ("dssematerial", "piidisclosures")}
    data = signed.get("data")
    if isinstance(data, dict) and isinstance(data.get("persons"), list):
        signed["piidisclosures"] = "~".join(
            disclosure(os.urandom(SALT_BYTES), person) for person in data["persons"]
        )
    body = material(signed)
    envelope = {
        "payload": b64(body),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": keyid, "sig": b64(key.sign(pae(PAYLOAD_TYPE, body)))}],
    }
    signed["dssematerial"] = b64(json.dumps(envelope, separators=(",", ":")).encode())
    return signed


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed ``dssematerial``: the signatures and the signed material."""

    body: bytes
    signatures: tuple[tuple[str, bytes], ...]
    core: bytes
    ext: bytes | None
    names: tuple[str, ...]


def open_envelope(value: Any) -> Envelope:
    """Steps 3-6 of the spec's verification protocol; :class:`SignatureInvalid` on any
    malformed part."""
    field = "dssematerial"
    if not isinstance(value, str) or not value:
        raise SignatureInvalid(field, "not a Base64 string")
    try:
        doc = json.loads(_unb64(value, field, "dssematerial").decode())
    except (ValueError, UnicodeDecodeError):
        raise SignatureInvalid(field, "not a DSSE JSON envelope") from None
    if not isinstance(doc, dict) or doc.get("payloadType") != PAYLOAD_TYPE:
        raise SignatureInvalid(field, f"payloadType is not {PAYLOAD_TYPE}")
    signatures = doc.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureInvalid(field, "no signature in the envelope")
    sigs = []
    for item in signatures:
        if not isinstance(item, dict) or not isinstance(item.get("keyid"), str):
            raise SignatureInvalid(field, "each signature needs a keyid and a sig")
        sigs.append((item["keyid"], _unb64(str(item.get("sig", "")), field, "sig")))
    body = _unb64(str(doc.get("payload", "")), field, "payload")
    try:
        vm = json.loads(body)
    except ValueError:
        raise SignatureInvalid(field, "the payload is not JSON") from None
    if not isinstance(vm, dict):
        raise SignatureInvalid(field, "the payload is not a JSON object")
    core = _unb64(str(vm.get("core", "")), field, "core")
    if len(core) != 32:
        raise SignatureInvalid(field, "core is not a SHA-256 digest")
    if ("ext" in vm) != ("signedextattrs" in vm):
        raise SignatureInvalid(field, "ext and signedextattrs come together or not at all")
    ext, names = None, ()
    if "ext" in vm:
        ext = _unb64(str(vm["ext"]), field, "ext")
        names = vm["signedextattrs"]
        if len(ext) != 32 or not isinstance(names, list) or not names:
            raise SignatureInvalid(field, "ext or signedextattrs is malformed")
        if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise SignatureInvalid(field, "signedextattrs repeats a name or is not names")
        if set(names) & {*CORE_ATTRIBUTES, "dssematerial"}:
            raise SignatureInvalid(field, "signedextattrs names a core attribute")
    return Envelope(body, tuple(sigs), core, ext, tuple(names))


def check(event: dict[str, Any], envelope: Envelope, keyid: str, key: Ed25519PublicKey) -> None:
    """Steps 7-9 with Liaison's strict profile: ``keyid``'s signature holds, the handling
    attributes are signed, CORE and EXT recompute. :class:`SignatureInvalid` otherwise."""
    sig = next((s for k, s in envelope.signatures if k == keyid), None)
    if sig is None:
        raise SignatureInvalid("dssematerial", f"no signature by key {keyid}")
    try:
        key.verify(sig, pae(PAYLOAD_TYPE, envelope.body))
    except InvalidSignature:
        raise SignatureInvalid("dssematerial", f"bad signature: not made by key {keyid}") from None
    missing = [name for name in SIGNED_EXTENSIONS if name not in envelope.names]
    if missing:
        raise SignatureInvalid(missing[0], f"{', '.join(missing)} must be signed (signedextattrs)")
    if core_digest(event) != envelope.core:
        raise SignatureInvalid(
            "data", "bad signature: the core attributes or data differ from what was signed"
        )
    assert envelope.ext is not None  # the handling attributes are named, so ext came with them
    if ext_digest(event, list(envelope.names)) != envelope.ext:
        names = ", ".join(envelope.names)
        raise SignatureInvalid(names.split(", ")[0], f"bad signature: {names} differ from signed")


def keyids(value: Any) -> list[str]:
    """The key ids a ``dssematerial`` names (empty when it cannot be read)."""
    try:
        return [keyid for keyid, _ in open_envelope(value).signatures]
    except SignatureInvalid:
        return []
