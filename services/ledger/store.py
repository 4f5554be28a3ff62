"""The append-only ledger on SQL: idempotent append, chained, replayable, verifiable."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from schemas.events import CloudEvent
from services.ledger import tables
from services.ledger.chain import GENESIS, entry_hash, event_json

PAGE = 1000


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One recorded event with its place in the chain."""

    seq: int
    hash: str
    prev_hash: str
    recorded_at: str
    event: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The public shape (DESIGN §4, "ledger entry")."""
        return {
            "seq": self.seq,
            "hash": self.hash,
            "prev_hash": self.prev_hash,
            "recorded_at": self.recorded_at,
            "event": self.event,
        }


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one append did: new entries' seqs and how many events were already recorded."""

    appended: tuple[int, ...] = ()
    duplicates: int = 0


@dataclass(slots=True)
class VerifyReport:
    """Outcome of recomputing the chain."""

    ok: bool = True
    count: int = 0
    head: str = GENESIS
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The public shape of ``GET /v1/ledger/verify``."""
        return {
            "ok": self.ok,
            "count": self.count,
            "head": self.head,
            "first_bad_seq": self.first_bad_seq,
            "problems": self.problems,
        }


def create_engine(url: str) -> AsyncEngine:
    """An engine for the ledger; SQLite gets WAL and ``BEGIN IMMEDIATE`` writers."""
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: one chain writer

    return engine


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class SqlLedger:
    """The ledger on a SQLAlchemy async engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._write_lock = asyncio.Lock()  # one writer per process; the database guards the rest

    async def create_schema(self) -> None:
        """Create the tables if they do not exist."""
        async with self.engine.begin() as conn:
            await conn.run_sync(tables.metadata.create_all)

    async def close(self) -> None:
        """Release the connection pool."""
        await self.engine.dispose()

    async def append(self, events: Sequence[CloudEvent]) -> AppendResult:
        """Append the events not yet recorded, in order, in one transaction."""
        if not events:
            return AppendResult()
        async with self._write_lock, self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7250001)")
            fresh = await self._not_recorded(conn, events)
            seq, prev = await self._head(conn)
            rows = []
            recorded_at = _now()
            for ev in fresh:
                seq += 1
                text = event_json(ev)
                digest = entry_hash(prev, seq, recorded_at, text)
                rows.append(_row(seq, ev, recorded_at, text, prev, digest))
                prev = digest
            if rows:
                await conn.execute(insert(tables.entries), rows)
        return AppendResult(tuple(r["seq"] for r in rows), len(events) - len(fresh))

    async def _not_recorded(
        self, conn: AsyncConnection, events: Sequence[CloudEvent]
    ) -> list[CloudEvent]:
        ids = {ev.id for ev in events}
        t = tables.entries
        query = select(t.c.source, t.c.event_id).where(t.c.event_id.in_(ids))
        known = {(row.source, row.event_id) for row in await conn.execute(query)}
        fresh = []
        for ev in events:
            if (ev.source, ev.id) not in known:
                known.add((ev.source, ev.id))
                fresh.append(ev)
        return fresh

    @staticmethod
    async def _head(conn: AsyncConnection) -> tuple[int, str]:
        t = tables.entries
        row = (
            await conn.execute(select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1))
        ).first()
        return (row.seq, row.hash) if row else (0, GENESIS)

    async def count(self) -> int:
        """Number of entries."""
        async with self.engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(tables.entries))).scalar_one()
            )

    async def entries(
        self, *, after: int = 0, limit: int | None = None, types: Sequence[str] = ()
    ) -> AsyncIterator[LedgerEntry]:
        """Entries in seq order, read in pages so memory stays constant."""
        t = tables.entries
        remaining = limit
        while remaining is None or remaining > 0:
            page = PAGE if remaining is None else min(PAGE, remaining)
            query = select(t).where(t.c.seq > after).order_by(t.c.seq).limit(page)
            if types:
                query = query.where(t.c.type.in_(types))
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
            for row in rows:
                yield LedgerEntry(
                    row.seq, row.hash, row.prev_hash, row.recorded_at, json.loads(row.event)
                )
            if len(rows) < page:
                return
            after = rows[-1].seq
            remaining = None if remaining is None else remaining - len(rows)

    async def verify(self) -> VerifyReport:
        """Recompute the whole chain; report the first entry that does not match."""
        report = VerifyReport()
        t = tables.entries
        after, prev = 0, GENESIS
        while True:
            query = select(t.c.seq, t.c.recorded_at, t.c.event, t.c.prev_hash, t.c.hash)
            query = query.where(t.c.seq > after).order_by(t.c.seq).limit(PAGE * 10)
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
            for row in rows:
                problem = _check(row, after + 1, prev)
                if problem:
                    report.ok, report.first_bad_seq = (
                        False,
                        row.seq if problem != "gap" else after + 1,
                    )
                    report.problems.append(f"seq {report.first_bad_seq}: {problem}")
                    return report
                after, prev = row.seq, row.hash
                report.count, report.head = row.seq, row.hash
            if not rows:
                return report


def _check(row: Any, expected_seq: int, prev: str) -> str | None:
    if row.seq != expected_seq:
        return "gap"
    if row.prev_hash != prev:
        return "prev_hash does not match the previous entry's hash"
    if entry_hash(prev, row.seq, row.recorded_at, row.event) != row.hash:
        return "hash does not match the entry's content"
    return None


def _row(
    seq: int, ev: CloudEvent, recorded_at: str, text: str, prev: str, digest: str
) -> dict[str, Any]:
    return {
        "seq": seq,
        "source": ev.source,
        "event_id": ev.id,
        "type": str(ev.type),
        "subject": ev.subject,
        "recorded_at": recorded_at,
        "event": text,
        "prev_hash": prev,
        "hash": digest,
    }
