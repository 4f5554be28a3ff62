"""The SQL of one append, on the driver's own parameter style (no per-row dicts).

Everything here runs inside the one transaction that holds the writer lock:
find which events are already recorded, read the head, chain the new rows,
insert them with one ``executemany``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.chain import GENESIS, entry_hash
from services.ledger.records import Record

WRITER_LOCK = 7250001  # PostgreSQL advisory lock: one chain writer at a time
COLUMNS = "seq, source, event_id, type, subject, event_time, recorded_at, event, prev_hash, hash"
ID_CHUNK = 5000  # ids per duplicate check (SQLite allows 32766 parameters)
INSERT = {
    "qmark": f"INSERT INTO ledger_entries ({COLUMNS}) VALUES ({', '.join('?' * 10)})",
    "numeric_dollar": f"INSERT INTO ledger_entries ({COLUMNS}) VALUES "
    f"({', '.join(f'${i}' for i in range(1, 11))})",
}
"""The insert in each driver's own parameter style (aiosqlite, asyncpg)."""

Row = tuple[int, str, str, str, str | None, str, str, str, str, str]


def _postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


async def lock(conn: AsyncConnection) -> None:
    """Take the chain's writer lock for this transaction (SQLite: ``BEGIN IMMEDIATE`` did)."""
    if _postgres(conn):
        await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITER_LOCK})")


async def head(conn: AsyncConnection) -> tuple[int, str]:
    """The last entry's seq and hash; ``(0, GENESIS)`` when the ledger is empty."""
    sql = "SELECT seq, hash FROM ledger_entries ORDER BY seq DESC LIMIT 1"
    row: Any = (await conn.exec_driver_sql(sql)).first()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


async def not_recorded(conn: AsyncConnection, records: Sequence[Record]) -> list[Record]:
    """The records whose ``(source, id)`` is neither in the ledger nor earlier in ``records``."""
    ids = list({r.event_id for r in records})
    known: set[tuple[str, str]] = set()
    for i in range(0, len(ids), ID_CHUNK):
        chunk = ids[i : i + ID_CHUNK]
        if _postgres(conn):
            sql = "SELECT source, event_id FROM ledger_entries WHERE event_id = ANY($1::varchar[])"
            params: tuple[object, ...] = (chunk,)
        else:
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT source, event_id FROM ledger_entries WHERE event_id IN ({marks})"
            params = tuple(chunk)
        result: Any = await conn.exec_driver_sql(sql, params)
        known.update((str(source), str(event_id)) for source, event_id in result)
    fresh = []
    for record in records:
        key = (record.source, record.event_id)
        if key not in known:
            known.add(key)
            fresh.append(record)
    return fresh


def chain(
    records: Sequence[Record], seq: int, prev: str, recorded_at: str
) -> tuple[list[Row], str]:
    """The rows that extend the chain after ``(seq, prev)``, and the new head hash."""
    rows: list[Row] = []
    for r in records:
        seq += 1
        digest = entry_hash(prev, seq, recorded_at, r.text)
        rows.append(
            (
                seq,
                r.source,
                r.event_id,
                r.type,
                r.subject,
                r.event_time,
                recorded_at,
                r.text,
                prev,
                digest,
            )
        )
        prev = digest
    return rows, prev


async def insert(conn: AsyncConnection, rows: list[Row]) -> None:
    """Insert chained rows with one ``executemany``."""
    await conn.exec_driver_sql(INSERT[conn.dialect.paramstyle], rows)
