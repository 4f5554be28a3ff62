"""The access record on SQL: its own hash chain, beside the ledger's, in the same database.

Every read of personal data (:mod:`services.core.access`) is one entry, chained with the
ledger's own formula (:func:`services.ledger.chain.entry_hash` over the record's canonical
JSON), appended idempotently by the record's id — the stream redelivers, the CLI writes
directly — under a writer lock of its own. :meth:`AccessStore.verify` recomputes the chain
and checks that the indexed columns and the report's index of persons say what the chained
records say, so an edited, deleted or inserted row is found and named by its seq.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.events import canonical_json
from services.ledger import tables
from services.ledger.chain import GENESIS, entry_hash
from services.ledger.engine import outage, to_completion
from services.ledger.records import utc_text

ACCESS_LOCK = 7250003  # PostgreSQL advisory lock: one writer of the access chain at a time
REQUIRED = ("id", "at", "principal", "channel", "events", "persons")


class NotARecord(ValueError):
    """A stream entry that is no access record."""


def parse_record(payload: bytes | str) -> dict[str, Any]:
    """An access record from its JSON, or :class:`NotARecord` saying what is missing."""
    try:
        doc = json.loads(payload)
    except ValueError:
        raise NotARecord("not JSON") from None
    if not isinstance(doc, dict):
        raise NotARecord("not a JSON object")
    missing = [name for name in REQUIRED if name not in doc]
    if missing:
        raise NotARecord(f"missing {', '.join(missing)}")
    if not isinstance(doc["id"], str) or not 0 < len(doc["id"]) <= 64:
        raise NotARecord("id: 1-64 characters")
    return doc


@dataclass(frozen=True, slots=True)
class AccessReport:
    """The outcome of :meth:`AccessStore.verify`."""

    ok: bool
    count: int
    head: str
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (``liaison access verify --json``)."""
        return {
            "ok": self.ok,
            "count": self.count,
            "head": self.head,
            "first_bad_seq": self.first_bad_seq,
            "problems": self.problems,
        }


class AccessStore:
    """The access chain on the ledger's engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def append(self, records: Sequence[dict[str, Any]]) -> int:
        """Append the records not yet recorded (by id), in order, in one transaction; how many
        were new."""
        if not records:
            return 0
        return await to_completion(self._append(records))

    async def _append(self, records: Sequence[dict[str, Any]]) -> int:
        e = tables.access_entries
        recorded_at = utc_text(datetime.now(UTC))
        async with outage(), self.engine.begin() as conn:
            await _lock(conn)
            ids = [str(r["id"]) for r in records]
            known = set(
                (await conn.execute(select(e.c.record_id).where(e.c.record_id.in_(ids)))).scalars()
            )
            head: Any = (
                await conn.execute(select(e.c.seq, e.c.hash).order_by(e.c.seq.desc()).limit(1))
            ).first()
            seq, prev = (int(head[0]), str(head[1])) if head else (0, GENESIS)
            rows, persons = [], []
            for record in records:
                if record["id"] in known:
                    continue
                known.add(record["id"])
                seq += 1
                text = canonical_json(record).decode()
                digest = entry_hash(prev, seq, recorded_at, text)
                rows.append(
                    {"seq": seq, "record_id": record["id"], "at": str(record["at"]),
                     "principal": str(record["principal"])[:200], "recorded_at": recorded_at,
                     "record": text, "prev_hash": prev, "hash": digest}
                )  # fmt: skip
                persons += [{"person": p, "seq": seq} for p in dict.fromkeys(record["persons"])]
                prev = digest
            if rows:
                await conn.execute(insert(e), rows)
            if persons:
                await conn.execute(insert(tables.access_persons), persons)
        return len(rows)

    async def count(self) -> int:
        """Entries in the access chain."""
        async with self.engine.connect() as conn:
            total = await conn.execute(select(func.count()).select_from(tables.access_entries))
            return int(total.scalar_one())

    async def latest(self, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        """The newest entries (before seq ``before``), each ``{seq, hash, recorded_at, record}``."""
        e = tables.access_entries
        query = select(e.c.seq, e.c.hash, e.c.recorded_at, e.c.record).order_by(e.c.seq.desc())
        if before is not None:
            query = query.where(e.c.seq < before)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit))).all()
        return [_entry(row) for row in rows]

    async def report(self, person: str) -> list[dict[str, Any]]:
        """Every entry that shows the person of this digest, oldest first; each checked against
        its chained record (an index row the record does not back is left out)."""
        e, p = tables.access_entries, tables.access_persons
        query = (
            select(e.c.seq, e.c.hash, e.c.recorded_at, e.c.record)
            .join(p, p.c.seq == e.c.seq)
            .where(p.c.person == person)
            .order_by(e.c.seq)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        entries = [_entry(row) for row in rows]
        return [entry for entry in entries if person in entry["record"].get("persons", ())]

    async def verify(self) -> AccessReport:
        """Recompute the chain; check the indexed columns and the index of persons."""
        e, p = tables.access_entries, tables.access_persons
        columns = (e.c.seq, e.c.record_id, e.c.at, e.c.principal, e.c.recorded_at, e.c.record,
                   e.c.prev_hash, e.c.hash)  # fmt: skip
        expected: set[tuple[str, int]] = set()
        prev, count, bad = GENESIS, 0, None
        problems: list[str] = []

        def broken(seq: int, what: str) -> None:
            nonlocal bad
            if bad is None:
                bad = seq
                problems.append(f"access entry #{seq}: {what}")

        async with self.engine.connect() as conn:
            result = await conn.stream(select(*columns).order_by(e.c.seq))
            async for seq, record_id, at, principal, recorded_at, text, prev_hash, digest in result:
                count += 1
                if bad is not None:
                    continue
                if seq != count:
                    broken(count, f"missing (the next is #{seq})")
                elif prev_hash != prev:
                    broken(seq, "prev_hash is not the previous entry's hash")
                elif entry_hash(prev, seq, recorded_at, text) != digest:
                    broken(seq, "hash does not match its content")
                else:
                    try:
                        doc = parse_record(text)
                    except NotARecord as exc:
                        broken(seq, f"the record is unreadable: {exc}")
                        continue
                    if (doc["id"], str(doc["at"]), str(doc["principal"])[:200]) != (
                        record_id,
                        at,
                        principal,
                    ):
                        broken(seq, "an indexed column differs from the chained record")
                    expected.update((person, seq) for person in doc["persons"])
                prev = digest
            indexed = {
                (str(person), int(seq))
                for person, seq in (await conn.execute(select(p.c.person, p.c.seq))).all()
            }
        upto = bad if bad is not None else count + 1
        wrong = {pair for pair in expected ^ indexed if pair[1] < upto}
        if wrong:
            seq = min(pair[1] for pair in wrong)
            problems.append(f"access entry #{seq}: the index of persons differs from the record")
            bad = seq if bad is None else min(bad, seq)
        return AccessReport(bad is None, count, prev, bad, problems)


def _entry(row: Any) -> dict[str, Any]:
    seq, digest, recorded_at, text = row
    try:
        record = json.loads(text)
    except ValueError:
        record = {"unreadable": True}
    return {"seq": int(seq), "hash": digest, "recorded_at": recorded_at, "record": record}


async def _lock(conn: AsyncConnection) -> None:
    """The access chain's writer lock for this transaction (SQLite: ``BEGIN IMMEDIATE`` did)."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ACCESS_LOCK})")
