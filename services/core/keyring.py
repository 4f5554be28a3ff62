"""The key registry: which Ed25519 keys may sign which publisher's events, and when.

Built from the configuration (:meth:`Registry.of_principals`) where ingest verifies before it
accepts, and from the ledger's ``key.registered`` / ``key.revoked`` entries
(:meth:`Registry.of_entries`) where an auditor verifies offline — the same checks both ways
(:meth:`Registry.check`), at the moment that counts: now at ingest, the entry's
``recorded_at`` in the ledger. Keys are held as raw bytes, so a registry can be sent to
ingest's screening processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.core import dsse
from services.core.config import Principal, Role, Signatures
from services.core.dsse import SignatureInvalid
from services.core.jcs import canonical

UNITS = "/units/"


@dataclass(frozen=True, slots=True)
class KeyTerms:
    """One key and what it may sign."""

    keyid: str
    raw: bytes
    """The Ed25519 public key's 32 raw bytes."""
    purpose: str = "publisher"
    publisher: str | None = None
    units: frozenset[str] = frozenset()
    signatures: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    revoked_at: datetime | None = None

    def registered(self) -> dict[str, Any]:
        """The ``key.registered`` data of these terms (revocation apart)."""
        doc: dict[str, Any] = {
            "keyid": self.keyid,
            "purpose": self.purpose,
            "public_key": dsse.b64(self.raw),
        }
        if self.publisher is not None:
            doc |= {"publisher": self.publisher, "units": sorted(self.units)}
            doc["signatures"] = self.signatures
        for name in ("not_before", "not_after"):
            moment = getattr(self, name)
            if moment is not None:
                doc[name] = moment.isoformat().replace("+00:00", "Z")
        return doc

    def version(self) -> str:
        """A digest of :meth:`registered`: a new one whenever the terms change."""
        return hashlib.sha256(canonical(self.registered())).hexdigest()[:16]

    def refusal(self, at: datetime, unit: str | None) -> str | None:
        """Why this key may not sign for ``unit`` at ``at``; None when it may."""
        if self.purpose != "publisher":
            return f"key {self.keyid} is the ledger's, not a publisher's"
        if unit is not None and unit not in self.units:
            return f"key {self.keyid} of {self.publisher} may not sign for {unit}"
        if self.revoked_at is not None and at >= self.revoked_at:
            return f"key {self.keyid} was revoked at {_text(self.revoked_at)}"
        if self.not_before is not None and at < self.not_before:
            return f"key {self.keyid} is valid only from {_text(self.not_before)}"
        if self.not_after is not None and at >= self.not_after:
            return f"key {self.keyid} expired at {_text(self.not_after)}"
        return None


def _text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Registry:
    """Keys by keyid, and which publishers require signatures."""

    keys: Mapping[str, KeyTerms] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    """Publishers whose every event must be signed."""

    @classmethod
    def of_principals(cls, principals: Sequence[Principal]) -> Registry:
        """The configured registry: each publisher's keys as ``<publisher>/<key id>``."""
        keys: dict[str, KeyTerms] = {}
        for p in principals:
            if p.role is not Role.PUBLISHER:
                continue
            for k in p.keys:
                keyid = f"{p.name}/{k.id}"
                keys[keyid] = KeyTerms(
                    keyid,
                    dsse.public_key(k.public_key).public_bytes_raw(),
                    publisher=p.name,
                    units=frozenset(p.units),
                    signatures=p.signatures.value,
                    not_before=k.not_before,
                    not_after=k.not_after,
                    revoked_at=k.revoked_at,
                )
        required = frozenset(
            p.name
            for p in principals
            if p.role is Role.PUBLISHER and p.signatures is Signatures.REQUIRED
        )
        return cls(keys, required)

    @classmethod
    def of_entries(cls, events: Iterable[dict[str, Any]]) -> Registry:
        """The registry the ledger's ``key.*`` events describe (in chain order: the latest
        terms of a key win, its earliest revocation stands)."""
        keys: dict[str, KeyTerms] = {}
        revoked: dict[str, datetime] = {}
        for event in events:
            data = event.get("data") or {}
            if event.get("type") == "key.registered":
                keys[data["keyid"]] = KeyTerms(
                    data["keyid"],
                    dsse.public_key(data["public_key"]).public_bytes_raw(),
                    purpose=data["purpose"],
                    publisher=data.get("publisher"),
                    units=frozenset(data.get("units") or ()),
                    signatures=data.get("signatures"),
                    not_before=_time(data.get("not_before")),
                    not_after=_time(data.get("not_after")),
                )
            elif event.get("type") == "key.revoked":
                at = _time(data["revoked_at"])
                assert at is not None
                revoked[data["keyid"]] = min(at, revoked.get(data["keyid"], at))
        for keyid, at in revoked.items():
            if keyid in keys:
                terms = keys[keyid]
                keys[keyid] = KeyTerms(**{**_fields(terms), "revoked_at": at})
        required = frozenset(
            t.publisher for t in keys.values() if t.publisher and t.signatures == "required"
        )
        return cls(keys, required)

    def requires(self, unit: str) -> str | None:
        """The publisher that requires signed events for ``unit``, if any."""
        for terms in self.keys.values():
            if terms.publisher in self.required and unit in terms.units:
                return terms.publisher
        return None

    def check(
        self, event: dict[str, Any], at: datetime, publisher: str | None = None
    ) -> str | None:
        """The keyid that signed ``event`` (an agency event's JSON), None if it is unsigned
        and may be; :class:`SignatureInvalid` with the field and reason otherwise.

        ``publisher``: the caller at ingest (only its keys count, its policy applies); None
        offline, where a key must be registered for the event's unit.
        """
        source = str(event.get("source", ""))
        unit = source.removeprefix(UNITS) if source.startswith(UNITS) else None
        material = event.get("dssematerial")
        if material is None or material == "":
            if publisher is not None and publisher in self.required:
                raise SignatureInvalid(
                    "dssematerial", f"signature required: {publisher} signs every event it sends"
                )
            return None
        envelope = dsse.open_envelope(material)
        named = [keyid for keyid, _ in envelope.signatures]
        candidates = [
            k
            for k in named
            if k in self.keys and (publisher is None or self.keys[k].publisher == publisher)
        ]
        if not candidates:
            raise SignatureInvalid("dssematerial", f"unknown key {', '.join(named)}")
        refusals = []
        for keyid in candidates:
            terms = self.keys[keyid]
            why = terms.refusal(at, unit)
            if why is None:
                key = Ed25519PublicKey.from_public_bytes(terms.raw)
                dsse.check(event, envelope, keyid, key)
                return keyid
            refusals.append(why)
        raise SignatureInvalid("dssematerial", "; ".join(refusals))


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _fields(terms: KeyTerms) -> dict[str, Any]:
    return {name: getattr(terms, name) for name in KeyTerms.__slots__}
