"""Publisher signatures in the ledger: the key registry recorded as entries, and every signed
event checked against it offline (docs/provenance.md).

The ledger records the registry itself when it starts (:func:`record_registry`): a
``key.registered`` per configured publisher key and for its own checkpoint key — again when a
key's terms change, the id ending in a digest of them — and a ``key.revoked`` per revoked key.
They are ordinary entries (source ``/liaison/ledger``), hashed into the chain and covered by the
checkpoints, so a bundle carries them.

:class:`ProvenanceCheck` then checks each signed agency event at its ``recorded_at`` against
the registry as it stood at that entry (the key's latest terms recorded before it; a key
registered only later — the ledger started after ingest learnt of it — by its first terms),
with every revocation in the chain applied by its time. It is a second pass of its own beside
:class:`~services.ledger.verify.ChainVerifier`, which it does not change.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.events import CloudEvent
from services.core.config import Principal
from services.core.dsse import SignatureInvalid, keyids
from services.core.keyring import KeyTerms, Registry
from services.ledger.records import utc_text
from services.ledger.signing import Signer
from services.ledger.store import AppendResult, SqlLedger

SOURCE = "/liaison/ledger"
_KEY_MARK = '"type":"key.'
_SIGNED_MARK = '"dssematerial":'


def checkpoint_keyid(signer: Signer) -> str:
    """The registry's name for the ledger's checkpoint key."""
    return f"ledger/{signer.key_id}"


def registry_events(
    principals: Sequence[Principal], signer: Signer | None, now: datetime
) -> list[CloudEvent]:
    """The ``key.*`` events that describe the configured registry, and the ledger's own
    checkpoint key beside them; none when no publisher has a key."""
    terms = list(Registry.of_principals(principals).keys.values())
    if not terms:
        return []  # no publisher signs: nothing to register (and no entry added to the chain)
    if signer is not None:
        raw = signer.public_key.public_bytes_raw()
        terms.append(KeyTerms(checkpoint_keyid(signer), raw, purpose="checkpoint"))
    at = utc_text(now)
    events = []
    for key in terms:
        events.append(_event(f"key.registered/{key.keyid}/{key.version()}", "key.registered", at,
                             key.registered()))  # fmt: skip
        if key.revoked_at is not None:
            revoked = {"keyid": key.keyid, "revoked_at": key.revoked_at.isoformat()}
            events.append(_event(f"key.revoked/{key.keyid}", "key.revoked", at, revoked))
    return events


def _event(event_id: str, kind: str, at: str, data: dict[str, Any]) -> CloudEvent:
    return CloudEvent.model_validate(
        {"specversion": "1.0", "id": event_id, "source": SOURCE, "type": kind, "time": at,
         "data": data}
    )  # fmt: skip


@dataclass(slots=True)
class ProvenanceReport:
    """What the signature pass found."""

    signed: int = 0
    """Agency events whose publisher signature verified."""
    unsigned: int = 0
    """Agency events without a signature."""
    keys: set[str] = field(default_factory=set)
    """The keyids that signed them."""
    first_bad_seq: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """No signed event failed."""
        return self.first_bad_seq is None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``verify --json`` and the HTTP verify document's ``signatures``)."""
        return {
            "signed": self.signed,
            "unsigned": self.unsigned,
            "keys": sorted(self.keys),
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


class ProvenanceCheck:
    """Two passes over the entries in seq order: :meth:`learn` every entry (keeps the
    registry's), then :meth:`check` every entry; :attr:`report` holds the verdict."""

    def __init__(self) -> None:
        self._key_events: list[tuple[int, dict[str, Any]]] = []
        self._snapshots: list[tuple[int, Registry]] | None = None
        self._latest = Registry()
        self.report = ProvenanceReport()

    def learn(self, seq: int, text: str) -> None:
        """Pass 1: keep the entry if it is a registry event."""
        if _KEY_MARK in text and f'"source":"{SOURCE}"' in text:
            event = json.loads(text)
            if event.get("source") == SOURCE:
                self._key_events.append((seq, event))

    def _registry_at(self, seq: int, keyids: Iterable[str]) -> Registry:
        if self._snapshots is None:
            events = [e for _, e in self._key_events]
            revocations = [e for e in events if e.get("type") == "key.revoked"]
            self._snapshots = []
            for i, (at, _) in enumerate(self._key_events):
                earlier = [e for _, e in self._key_events[: i + 1]]
                self._snapshots.append((at, Registry.of_entries([*earlier, *revocations])))
            firsts: dict[str, dict[str, Any]] = {}
            for e in events:
                if e.get("type") == "key.registered":
                    firsts.setdefault(e["data"]["keyid"], e)
            self._latest = Registry.of_entries([*firsts.values(), *revocations])
        index = bisect.bisect_left([s for s, _ in self._snapshots], seq) - 1
        registry = self._snapshots[index][1] if index >= 0 else Registry()
        if any(k in registry.keys for k in keyids):
            return registry
        return self._latest  # registered only after this entry: its first terms

    def check(self, seq: int, recorded_at: str, text: str) -> bool:
        """Pass 2: check one entry; False once a signed event failed (stop feeding)."""
        if not text.startswith('{"data":') or '"source":"/units/' not in text:
            return True  # the system's own events are vouched for by the chain
        if _SIGNED_MARK not in text:
            self.report.unsigned += 1
            return True
        event = json.loads(text)
        if not event.get("dssematerial"):
            self.report.unsigned += 1
            return True
        at = datetime.fromisoformat(recorded_at.replace("Z", "+00:00")).astimezone(UTC)
        registry = self._registry_at(seq, keyids(event["dssematerial"]))
        try:
            keyid = registry.check(event, at)
        except SignatureInvalid as exc:
            self.report.first_bad_seq = seq
            self.report.problem = f"publisher signature: {exc.field}: {exc}"
            return False
        if keyid is None:  # pragma: no cover - dssematerial present means a keyid or a refusal
            self.report.unsigned += 1
        else:
            self.report.signed += 1
            self.report.keys.add(keyid)
        return True


def check_rows(rows: Sequence[tuple[int, str, str]]) -> ProvenanceReport:
    """Both passes over ``(seq, recorded_at, event text)`` rows held in memory (tests, pages)."""
    check = ProvenanceCheck()
    for seq, _, text in rows:
        check.learn(seq, text)
    for seq, recorded_at, text in rows:
        if not check.check(seq, recorded_at, text):
            break
    return check.report


async def record_registry(
    ledger: SqlLedger, principals: Sequence[Principal], now: datetime | None = None
) -> AppendResult:
    """Append the registry's events not yet recorded (each has a fixed id: a no-op when
    nothing changed)."""
    events = registry_events(principals, ledger.signer, now or datetime.now(UTC))
    return await ledger.append(events)


def _bundle_entries(path: Path) -> Iterator[tuple[int, str, str]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            entry = doc.get("entry") if isinstance(doc, dict) else None
            if entry is not None:
                yield entry["seq"], entry["recorded_at"], entry["event"]


def check_bundle(path: Path) -> ProvenanceReport:
    """Every signed event of an exported bundle against the registry it carries."""
    check = ProvenanceCheck()
    for seq, _, text in _bundle_entries(path):
        check.learn(seq, text)
    for seq, recorded_at, text in _bundle_entries(path):
        if not check.check(seq, recorded_at, text):
            break
    return check.report


async def check_ledger(ledger: SqlLedger) -> ProvenanceReport:
    """Every signed event of the database against the registry it holds."""
    check = ProvenanceCheck()
    async for row in ledger.rows():
        check.learn(row.seq, row.event)
    async for row in ledger.rows():
        if not check.check(row.seq, row.recorded_at, row.event):
            break
    return check.report
