"""``liaison ledger restore BUNDLE``: a ledger re-created from its exported bundle.

The backup procedure (docs/ledger.md, "Backup and restore"): ``liaison ledger export`` signs
the head and writes every entry up to that checkpoint; ``restore`` puts them back into an
empty database, byte for byte — the stored event texts, ``recorded_at``, the hashes, the
checkpoints with their signatures — and derives the indexed columns from the texts as the
writer does, so the restored ledger verifies (chain, checkpoints, signatures, columns) and
the next append continues at the next ``seq``.

It refuses, changing nothing: a bundle that does not verify against a key the operator
trusts (``--public-key``, ``LIAISON_TRUSTED_KEYS``, else the ledger's own signing key here);
a database that already holds entries or checkpoints; and a checkpoint or entry line with a
field this release does not know (a bundle of a later format that adds one would lose it:
restore it with that release). Unknown fields of the header are ignored: the header is
information, written again by every export, and nothing in it is stored or signed.

The witnesses' cosignatures a bundle carries (``{"cosignature": …}`` lines) are restored
with it, so the restored ledger is still held to what they vouched for; the time each was
first received is not in the bundle, so they are recorded as received at the restore. They
are kept as the bundle has them, as the export wrote them: an auditor's ``verify
--witness-key`` checks each against the witness's own key, and one that does not verify is
``BROKEN``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.ledger import append, audit, tables, witness_store
from services.ledger.checkpoints import Checkpoint
from services.ledger.records import record_of_payload, utc_text
from services.ledger.store import SqlLedger
from services.ledger.verify import VerifyReport
from services.ledger.witness import Cosignature

CHUNK = 1000
"""Entries inserted per statement."""
ENTRY_FIELDS = frozenset(f.name for f in fields(audit.BundleRow))
CHECKPOINT_FIELDS = frozenset(
    [
        "size",
        "head_hash",
        "signed_at",
        "key_id",
        "signature",
        "version",
        "prev",
        "every",
        "interval_ms",
        "index_hash",
    ]
)
COSIGNATURE_FIELDS = frozenset(["witness", "size", "head_hash", "timestamp", "signature"])
KINDS = {"checkpoint": CHECKPOINT_FIELDS, "entry": ENTRY_FIELDS, "cosignature": COSIGNATURE_FIELDS}


class RestoreRefused(Exception):
    """Nothing was restored; the message says why. ``broken``: the bundle does not verify."""

    def __init__(self, message: str, *, broken: bool = False, unverified: bool = False) -> None:
        super().__init__(message)
        self.broken, self.unverified = broken, unverified


@dataclass(frozen=True, slots=True)
class Restored:
    """What was restored, and the restored database's own verification."""

    entries: int
    checkpoints: int
    ignored_header_fields: tuple[str, ...]
    report: VerifyReport


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise RestoreRefused(f"{path}: line {number} is not JSON: {exc.msg}") from None


def _known_fields(path: Path) -> tuple[str, ...]:
    """Refuse a line with a field this release cannot store; the header's unknown fields."""
    header_fields: tuple[str, ...] = ()
    for number, line in _lines(path):
        if number == 1:
            known = {"format", "exported_at", "public_key", "key_id", "origin"}
            known |= {"checkpoint_every", "checkpoint_interval"}
            header_fields = tuple(sorted(set(line) - known))
            continue
        kind = next(iter(line), "") if len(line) == 1 else ""
        body = line.get(kind)
        if kind not in KINDS or not isinstance(body, dict):
            raise RestoreRefused(
                f"{path}: line {number}: neither a checkpoint, a cosignature nor an entry"
            )
        allowed = KINDS[kind]
        if unknown := sorted(set(body) - allowed):
            raise RestoreRefused(
                f"{path}: line {number}: {kind} field(s) {', '.join(unknown)} unknown to this "
                "release; restoring would drop them: restore with the release that exported it"
            )
    return header_fields


def _row(entry: Mapping[str, Any]) -> append.Row:
    """A table row of a bundle entry: the columns derived from the text, as the writer does."""
    text = str(entry["event"])
    record = record_of_payload(text.encode())
    return (
        int(entry["seq"]),
        record.source,
        record.event_id,
        record.type,
        record.subject,
        record.event_time,
        str(entry["recorded_at"]),
        text,
        str(entry["prev_hash"]),
        str(entry["hash"]),
    )


async def restore_bundle(
    ledger: SqlLedger, path: Path, keys: Mapping[str, Ed25519PublicKey]
) -> Restored:
    """Verify ``path`` against the trusted ``keys``, then write it into the empty ``ledger``."""
    if not keys:
        raise RestoreRefused("no trusted key: give --public-key KEY.pem", unverified=True)
    ignored = _known_fields(path)
    try:
        verdict = audit.verify_bundle(path, keys)
    except (ValueError, KeyError, TypeError) as exc:
        raise RestoreRefused(f"{path}: cannot read the bundle: {exc}") from None
    if not verdict.ok:
        where = f" at seq {verdict.first_bad_seq}" if verdict.first_bad_seq else ""
        problem = verdict.problems[0] if verdict.problems else "it does not verify"
        raise RestoreRefused(f"{path}: broken{where}: {problem}", broken=True)
    if not verdict.origin_verified:
        raise RestoreRefused(
            f"{path}: no trusted key signed its checkpoints (keys trusted: {', '.join(keys)})",
            unverified=True,
        )
    if await ledger.count() or await ledger.checkpoints():
        raise RestoreRefused("the database already holds a ledger: restore into an empty one")
    checkpoints, entries = await _write(ledger, path)
    return Restored(entries, checkpoints, ignored, await ledger.verify(keys))


async def _write(ledger: SqlLedger, path: Path) -> tuple[int, int]:
    """Every checkpoint and entry of the bundle, in one transaction."""
    checkpoints: list[dict[str, Any]] = []
    cosignatures: list[dict[str, Any]] = []
    restored_at = utc_text(datetime.now(UTC))
    count, rows = 0, []
    async with ledger.engine.begin() as conn:
        for number, line in _lines(path):
            if number == 1:
                continue
            if "checkpoint" in line:
                checkpoints.append(Checkpoint.from_dict(line["checkpoint"]).to_dict())
                continue
            if "cosignature" in line:
                kept = Cosignature.from_dict(line["cosignature"]).to_dict()
                cosignatures.append(kept | {"received_at": restored_at})
                continue
            rows.append(_row(line["entry"]))
            if len(rows) == CHUNK:
                await append.insert(conn, rows)
                count, rows = count + len(rows), []
        if rows:
            await append.insert(conn, rows)
            count += len(rows)
        if checkpoints:
            await conn.execute(tables.checkpoints.insert(), checkpoints)
        if cosignatures:
            await conn.execute(witness_store.cosignatures.insert(), cosignatures)
    return len(checkpoints), count
