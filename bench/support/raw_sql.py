"""Raw limits of the database, on the plain driver: batched chained append, full scans.

The table is the ledger's own (created by its migrations), so indexes and the
unique constraint cost the same; the stored text is prepared outside the
timing, the chain (:func:`services.ledger.chain.entry_hash`) inside it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import IO, Any, NamedTuple

import asyncpg  # type: ignore[import-untyped]

from schemas.events import CloudEvent
from services.ledger.chain import GENESIS, entry_hash
from services.ledger.engine import SQLITE_PRAGMAS
from services.ledger.records import utc_text

BATCH = 500
COLUMNS = "seq, source, event_id, type, subject, event_time, recorded_at, event, prev_hash, hash"
INSERT_SQLITE = f"INSERT INTO ledger_entries ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_PG = (
    f"INSERT INTO ledger_entries ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)
SCAN = "SELECT seq, recorded_at, event, prev_hash, hash FROM ledger_entries ORDER BY seq"
PAGE_SCAN = "SELECT seq, recorded_at, event, prev_hash, hash FROM ledger_entries WHERE seq > $1 ORDER BY seq LIMIT $2"
PAGE = 5000
LINE = '{"seq":%d,"hash":"%s","prev_hash":"%s","recorded_at":"%s","event":%s}\n'

Fixed = tuple[str, str, str, str | None, str, str]
Row = tuple[int, str, str, str, str | None, str, str, str, str, str]


def fixed_columns(events: Sequence[CloudEvent], stored: Sequence[str]) -> list[Fixed]:
    """What does not depend on the chain: source, id, type, subject, time, stored text."""
    return [
        (ev.source, ev.id, str(ev.type), ev.subject, utc_text(ev.time), text)
        for ev, text in zip(events, stored, strict=True)
    ]


def _chain(batch: Sequence[Fixed], seq: int, prev: str) -> tuple[list[Row], int, str]:
    recorded_at = utc_text(datetime.now(UTC))
    rows: list[Row] = []
    for source, event_id, type_, subject, event_time, text in batch:
        seq += 1
        digest = entry_hash(prev, seq, recorded_at, text)
        rows.append(
            (seq, source, event_id, type_, subject, event_time, recorded_at, text, prev, digest)
        )
        prev = digest
    return rows, seq, prev


def sqlite_connect(path: str) -> sqlite3.Connection:
    """The pragmas of ``services.ledger.engine.create_engine``: WAL, synchronous=FULL, …"""
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    for pragma in SQLITE_PRAGMAS:
        db.execute(pragma)
    return db


def sqlite_append(path: str, fixed: Sequence[Fixed], batch: int = BATCH) -> float:
    """Seconds to append every row, ``batch`` per ``BEGIN IMMEDIATE`` … ``COMMIT``."""
    db = sqlite_connect(path)
    seq, prev = 0, GENESIS
    start = time.perf_counter()
    for i in range(0, len(fixed), batch):
        rows, seq, prev = _chain(fixed[i : i + batch], seq, prev)
        db.execute("BEGIN IMMEDIATE")
        db.executemany(INSERT_SQLITE, rows)
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


class Scans(NamedTuple):
    """Seconds for each full scan of the ledger on the plain driver."""

    parse: float
    """Each row's event parsed with ``json.loads`` (0.0 when skipped)."""
    rehash: float
    """The SHA-256 chain recomputed."""
    lines: float
    """Each row written as a replay JSON line (stored text embedded) to a null sink."""


def sqlite_scans(path: str, *, parse: bool = True) -> Scans:
    """Seconds for full scans that parse (unless ``parse`` is off), recompute the chain,
    and write replay lines."""
    db = sqlite_connect(path)
    start = time.perf_counter()
    for row in db.execute(SCAN) if parse else ():
        json.loads(row[2])
    parsed = time.perf_counter() - start if parse else 0.0
    start = time.perf_counter()
    _rehash(db.execute(SCAN), GENESIS)
    rehash = time.perf_counter() - start
    with open(os.devnull, "w", encoding="utf-8") as sink:
        start = time.perf_counter()
        _write_lines(db.execute(SCAN), sink)
        lines = time.perf_counter() - start
    db.close()
    return Scans(parsed, rehash, lines)


def _write_lines(rows: Iterable[Any], sink: IO[str]) -> None:
    for seq, recorded_at, text, prev_hash, digest in rows:
        sink.write(LINE % (seq, digest, prev_hash, recorded_at, text))


def _rehash(rows: Iterable[Any], prev: str) -> str:
    for seq, recorded_at, text, prev_hash, digest in rows:
        if prev_hash != prev or entry_hash(prev, seq, recorded_at, text) != digest:
            raise RuntimeError(f"raw scan: chain broken at seq {seq}")
        prev = digest
    return prev


def asyncpg_dsn(url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy ``postgresql+asyncpg://`` URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def pg_append(url: str, fixed: Sequence[Fixed], batch: int = BATCH) -> float:
    """Seconds to append every row, ``batch`` per transaction (asyncpg ``executemany``)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    seq, prev = 0, GENESIS
    try:
        start = time.perf_counter()
        for i in range(0, len(fixed), batch):
            rows, seq, prev = _chain(fixed[i : i + batch], seq, prev)
            async with conn.transaction():
                await conn.executemany(INSERT_PG, rows)
        return time.perf_counter() - start
    finally:
        await conn.close()


async def pg_scans(url: str, *, parse: bool = True) -> Scans:
    """Like :func:`sqlite_scans`, in keyset pages of ``PAGE`` rows (asyncpg ``fetch``)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        start, parsed = time.perf_counter(), 0.0
        if parse:
            async for rows in _pages(conn):
                for row in rows:
                    json.loads(row[2])
            parsed = time.perf_counter() - start
        start, prev = time.perf_counter(), GENESIS
        async for rows in _pages(conn):
            prev = _rehash(rows, prev)
        rehash = time.perf_counter() - start
        with open(os.devnull, "w", encoding="utf-8") as sink:  # noqa: ASYNC230 - never blocks
            start = time.perf_counter()
            async for rows in _pages(conn):
                _write_lines(rows, sink)
            return Scans(parsed, rehash, time.perf_counter() - start)
    finally:
        await conn.close()


async def _pages(conn: Any) -> AsyncIterator[list[Any]]:
    after = 0
    while rows := await conn.fetch(PAGE_SCAN, after, PAGE):
        yield rows
        after = rows[-1][0]


def _sqlite_path(url: str) -> str | None:
    return url.split(":///", 1)[1] if url.startswith("sqlite") else None


async def append(url: str, fixed: Sequence[Fixed], batch: int = BATCH) -> float:
    """Seconds for the batched chained append on the database of ``url`` (SQLAlchemy form)."""
    path = _sqlite_path(url)
    return sqlite_append(path, fixed, batch) if path else await pg_append(url, fixed, batch)


async def scans(url: str, *, parse: bool = True) -> Scans:
    """Seconds for the raw scans of the ledger at ``url`` (the parsing one only if ``parse``)."""
    path = _sqlite_path(url)
    return sqlite_scans(path, parse=parse) if path else await pg_scans(url, parse=parse)
