"""What auditors do with the ledger: replay, one alert's trail, seizure statistics,
and a self-contained bundle that verifies offline."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from schemas.vocabulary import SYSTEM_TYPES
from services.ledger import scan, witness_store
from services.ledger.checkpoints import Checkpoint
from services.ledger.scan import Query
from services.ledger.signing import key_id, load_public_key, public_pem
from services.ledger.store import LedgerEntry, SqlLedger, UnreadableEntry
from services.ledger.verify import ChainVerifier, VerifyReport
from services.ledger.witness import DEFAULT_ORIGIN, Cosignature

BUNDLE_FORMAT = "liaison-ledger-bundle/v2"
BUNDLE_FORMATS = (BUNDLE_FORMAT, "liaison-ledger-bundle/v1")
"""Formats read: v1 bundles (before checkpoints chained) are held to the same rules."""


@dataclass(frozen=True, slots=True)
class BundleRow:
    """An entry as a bundle carries it: the stored event text, verbatim."""

    seq: int
    recorded_at: str
    event: str
    prev_hash: str
    hash: str


async def replay(ledger: SqlLedger, query: Query, out: IO[str]) -> int:
    """Write the selected entries to ``out`` as JSON lines, a page at a time; returns how many."""
    count = 0
    async for page in ledger.pages(query):
        out.writelines(scan.json_lines(page))
        count += len(page)
    return count


async def seizure_stats(ledger: SqlLedger) -> list[dict[str, Any]]:
    """Seizure totals by unit, substance, month and measure, read in one streaming pass.

    Each seizure counts once. Reports that share ``data.case`` describe one
    seizure (customs and police both report the same heroin): the first of
    them in the ledger — the lowest seq — gives its unit, month, substances and
    quantities; later ones, kept in the ledger all the same, only add to
    ``reports``. A report without ``case`` is a seizure of its own.
    """
    totals: dict[tuple[str, str, str, str], list[float]] = defaultdict(lambda: [0.0, 0, 0])
    counted: dict[str, frozenset[tuple[str, str, str, str]]] = {}  # case → its first report's rows
    async with aclosing(ledger.entries(Query(types=("seizure.reported",)))) as entries:
        async for entry in entries:
            with _well_formed(entry):
                event, data = entry.event, entry.event["data"]
                case = data.get("case")
                if case is not None and case in counted:
                    for key in counted[case]:
                        totals[key][2] += 1  # another report of a seizure already counted
                    continue
                unit = event["source"].removeprefix("/units/")
                month = data["occurred_at"][:7]
                keys = set()
                for drug in data["drugs"]:
                    key = (unit, drug["substance"], month, drug["measure"])
                    totals[key][0] += drug["quantity"]
                    keys.add(key)
                for key in keys:
                    totals[key][1] += 1
                    totals[key][2] += 1
                if case is not None:
                    counted[case] = frozenset(keys)
    return [
        {
            "unit": unit,
            "substance": substance,
            "month": month,
            "measure": measure,
            "quantity": round(quantity, 9),
            "seizures": int(seizures),
            "reports": int(reports),
        }
        for (unit, substance, month, measure), (quantity, seizures, reports) in sorted(
            totals.items()
        )
    ]


def describe(event: dict[str, Any]) -> str:
    """One line telling what an event says, for trails."""
    data, kind = event["data"], event["type"]
    if kind == "alert.raised":
        return f"raised by {event['source'].removeprefix('/units/')} ({data['severity']}): {data['summary']}"
    if kind == "alert.delivered":
        return (
            f"delivered to {data['recipient']} ({', '.join(data['reasons'])}; {data['view']} view)"
        )
    if kind == "alert.acknowledged":
        return f"acknowledged by {data['unit']}: {_acknowledger(data)}"
    if kind == "alert.escalated":
        return f"escalated: {data['unit']} silent past {data['deadline']}"
    if kind == "seizure.reported":
        drugs = ", ".join(f"{d['quantity']} {d['measure']} {d['substance']}" for d in data["drugs"])
        return f"seizure reported by {event['source'].removeprefix('/units/')}: {drugs}"
    return f"{kind.removeprefix('alert.')} by {event['source'].removeprefix('/units/')}: {data.get('reason', '')}"


def _acknowledger(data: dict[str, Any]) -> str:
    """Who acknowledged: the authenticated principal (and its person), then the typed name."""
    principal, person, typed = data.get("principal"), data.get("person"), data.get("officer")
    if principal is None:  # recorded before principals were: only a typed, unverified name
        return f"officer named {typed!r} (principal not recorded)" if typed else "unnamed officer"
    who = f"{principal} ({person})" if person else principal
    return f"{who}, typed name {typed!r}" if typed else who


class AmbiguousAlert(ValueError):
    """Several units raised an alert of this id: say whose trail (``--source``)."""

    def __init__(self, alert_id: str, origins: list[str]) -> None:
        super().__init__(
            f"alert {alert_id!r} was raised by {', '.join(origins)}: name one with --source"
        )
        self.origins = origins


async def trail(
    ledger: SqlLedger, alert_id: str, source: str | None = None
) -> AsyncGenerator[tuple[int, str, str]]:
    """(seq, time, what happened) for one alert, in ledger order.

    An alert is its origin's: ``source`` (``BLO-OYBEK`` or ``/units/BLO-OYBEK``) says whose
    when several units raised an alert of this id (:class:`AmbiguousAlert` otherwise). The
    trail holds that unit's events about the id, the system's receipts for its alert, and
    other events naming the id (a seizure report names an alert by its id only).
    """
    origin = source.removeprefix("/units/") if source else await raised_by(ledger, alert_id)
    async with aclosing(ledger.entries(Query(about=alert_id))) as entries:
        async for entry in entries:
            with _well_formed(entry):
                if origin is not None and not in_trail_of(entry.event, origin):
                    continue
                step = entry.seq, entry.event["time"], describe(entry.event)
            yield step


async def raised_by(ledger: SqlLedger, alert_id: str) -> str | None:
    """The unit that raised the alert of this id (None: none recorded);
    :class:`AmbiguousAlert` when several did."""
    origins: list[str] = []
    query = Query(about=alert_id, types=("alert.raised",))
    async with aclosing(ledger.entries(query)) as entries:
        async for entry in entries:
            with _well_formed(entry):
                if entry.event["id"] == alert_id and entry.event["source"] not in origins:
                    origins.append(entry.event["source"])
    if len(origins) > 1:
        raise AmbiguousAlert(alert_id, sorted(o.removeprefix("/units/") for o in origins))
    return origins[0].removeprefix("/units/") if origins else None


_ALERT_LIFE = frozenset({"alert.raised", "alert.updated", "alert.cancelled", "alert.closed"})
_RECEIPTS = frozenset(str(t) for t in SYSTEM_TYPES)


def in_trail_of(event: dict[str, Any], origin: str) -> bool:
    """Whether an event about an alert id (``Query(about=…)``) belongs to the trail of
    ``origin``'s alert of that id."""
    if event["type"] in _ALERT_LIFE:
        return bool(event["source"] == f"/units/{origin}")  # only the originator changes it
    if event["type"] in _RECEIPTS:  # they name the alert's origin (those recorded before, not)
        return bool(event["data"].get("alert_source", origin) == origin)
    return True  # a seizure report naming the id


@contextmanager
def _well_formed(entry: LedgerEntry) -> Iterator[None]:
    """Turn a stored event missing what its type has (an altered row) into a clear error."""
    try:
        yield
    except (KeyError, TypeError, AttributeError) as exc:
        raise UnreadableEntry(entry.seq, f"is not a well-formed event ({exc!r})") from None


async def export_bundle(ledger: SqlLedger, out: IO[str], origin: str = DEFAULT_ORIGIN) -> int:
    """Write header, checkpoints, witnesses' cosignatures and entries as JSON lines, ending at a
    signed checkpoint (the head is signed first if it is not); returns the entry count."""
    if ledger.signer is None:
        raise ValueError("the ledger has no signing key to export")
    await ledger.checkpoint_if_due(force=True)
    checkpoints = await ledger.checkpoints()
    size = checkpoints[-1].size if checkpoints else 0  # entries appended since stay out
    header = {
        "format": BUNDLE_FORMAT,
        "exported_at": datetime.now(UTC).isoformat(),
        "public_key": public_pem(ledger.signer.public_key),
        "key_id": ledger.signer.key_id,
        "checkpoint_every": ledger.policy.every,
        "checkpoint_interval": ledger.policy.interval,
        "origin": origin,
    }
    out.write(json.dumps(header) + "\n")
    for checkpoint in checkpoints:
        out.write(json.dumps({"checkpoint": checkpoint.to_dict()}) + "\n")
    for cosignature in await witness_store.load(ledger.engine, upto=size):
        out.write(json.dumps({"cosignature": cosignature.to_dict()}) + "\n")
    count = 0
    async for page in ledger.pages(Query(limit=size)):
        out.writelines(scan.bundle_lines(page))
        count += len(page)
    return count


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {number} is not JSON: {exc.msg}") from None


def verify_bundle(path: Path, keys: Mapping[str, Ed25519PublicKey] | None = None) -> VerifyReport:
    """Verify an exported bundle offline against the trusted ``keys`` (by key id).

    Without them it is checked with the key the bundle itself carries, which
    proves only that it is consistent: anyone can re-sign a forged bundle with
    a key of their own, so the report's origin stays unverified.
    """
    return read_bundle(path, keys).report


@dataclass(slots=True)
class BundleRead:
    """A bundle verified: the report, and what witnesses are checked with."""

    report: VerifyReport
    origin: str
    """The ledger's name (C2SP origin) its header states (older bundles: the default)."""
    cosignatures: list[Cosignature]
    heads: dict[int, str]
    """The verified entry hash at each size a cosignature (or ``want``) names."""


def read_bundle(
    path: Path, keys: Mapping[str, Ed25519PublicKey] | None = None, want: Iterable[int] = ()
) -> BundleRead:
    """:func:`verify_bundle`, keeping its cosignature lines and the entry hashes at the sizes
    they (and ``want``) name, for :func:`services.ledger.witness.check`."""
    cosignatures: list[Cosignature] = []
    wanted, heads = set(want), {}
    lines = _lines(path)
    header = next(lines, None)
    if not header or header.get("format") not in BUNDLE_FORMATS:
        raise ValueError(f"{path}: not a {BUNDLE_FORMAT} file")
    if not keys:
        own = load_public_key(header["public_key"])
        keys, trusted = {key_id(own): own}, False
    else:
        trusted = True
    checkpoints: list[Checkpoint] = []
    verifier: ChainVerifier | None = None
    for line in lines:
        if "checkpoint" in line:
            if verifier is not None:
                raise ValueError(f"{path}: a checkpoint line after the entries")
            checkpoints.append(Checkpoint.from_dict(line["checkpoint"]))
            continue
        if "cosignature" in line:  # witnesses' (bundles since issue 19)
            cosignatures.append(Cosignature.from_dict(line["cosignature"]))
            wanted.add(cosignatures[-1].size)
            continue
        if verifier is None:
            verifier = ChainVerifier(checkpoints, keys, trusted=trusted, bundle=True)
        row = BundleRow(**line["entry"])
        if not verifier.feed(row):
            break
        if row.seq in wanted:  # verified: it links and hashes
            heads[row.seq] = row.hash
    report = (verifier or ChainVerifier(checkpoints, keys, trusted=trusted, bundle=True)).finish()
    return BundleRead(report, str(header.get("origin") or DEFAULT_ORIGIN), cosignatures, heads)
