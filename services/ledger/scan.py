"""Reading the ledger fast: one streaming cursor on the driver connection, pages of tuples.

Replay, export and verify read millions of entries; SQLAlchemy's per-row
handling and a fresh connection per keyset page cost more than the database
itself, so they read here instead: one query, a driver cursor (aiosqlite's
``fetchmany``, an asyncpg server-side cursor in a read-only transaction),
``PAGE`` rows at a time so memory stays constant, each row a plain tuple
:data:`RawRow`. The event is the stored text, never parsed here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import tables
from services.ledger.columns import INDEX_SQL

PAGE = 2000


@dataclass(frozen=True, slots=True)
class Query:
    """Which entries to read: after a seq, of some types, event time in [since, until)."""

    after: int = 0
    limit: int | None = None
    types: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    about: str | None = None
    """Only one alert's story: the event with this id and every event whose subject it is."""
    sources: tuple[str, ...] = ()
    """Only events from these CloudEvent sources (``/units/BLO-OYBEK``, ``/liaison/notifier``)."""


RawRow = tuple[int, str, str, str, str]
"""``(seq, hash, prev_hash, recorded_at, event)``; ``event`` is the stored canonical JSON text."""

_COLUMNS = "seq, hash, prev_hash, recorded_at, event"
INDEXED = f"{_COLUMNS}, {INDEX_SQL}"
"""Verification's columns: the entry, then its indexed columns as one text (:mod:`columns`)."""
_BUNDLE_ENTRY = '{"entry":{"seq":%d,"hash":"%s","prev_hash":"%s","recorded_at":"%s","event":%s}}\n'
_ENTRY_JSON = '{"seq":%d,"hash":"%s","prev_hash":"%s","recorded_at":"%s","event":%s}'


def entry_json(row: RawRow) -> str:
    """The public entry shape (docs/http-api.md, "Documents it returns") as compact JSON, the stored event text embedded verbatim.

    No parse and no re-serialisation: the stored text already is canonical
    JSON, and the other members are a number, hex digests and a timestamp we
    wrote. A row tampered with in the database shows as it is stored;
    ``verify`` is what judges it.
    """
    return _ENTRY_JSON % row


def json_lines(rows: Sequence[RawRow]) -> list[str]:
    """Rows as JSON lines (``liaison ledger replay``), for ``writelines``."""
    line = _ENTRY_JSON + "\n"
    return [line % row for row in rows]


def bundle_lines(rows: Sequence[RawRow]) -> list[str]:
    """Rows as a bundle's ``{"entry": …}`` lines (``event`` is the stored text as a string)."""
    dumps = json.dumps
    return [
        _BUNDLE_ENTRY % (seq, digest, prev, recorded_at, dumps(text, ensure_ascii=False))
        for seq, digest, prev, recorded_at, text in rows
    ]


def select_sql(
    query: Query, placeholder: Callable[[int], str], columns: str = _COLUMNS
) -> tuple[str, list[Any]]:
    """The entries ``query`` selects, in seq order, as SQL with positional parameters."""
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return placeholder(len(params))

    where = [f"seq > {param(query.after)}"]
    if query.types:
        where.append(f"type IN ({', '.join(param(t) for t in query.types)})")
    if query.sources:
        where.append(f"source IN ({', '.join(param(s) for s in query.sources)})")
    if query.since:
        where.append(f"event_time >= {param(query.since)}")
    if query.until:
        where.append(f"event_time < {param(query.until)}")
    if query.about:
        where.append(f"(subject = {param(query.about)} OR event_id = {param(query.about)})")
    sql = f"SELECT {columns} FROM {tables.entries.name} WHERE {' AND '.join(where)} ORDER BY seq"
    if query.limit is not None:
        sql += f" LIMIT {param(query.limit)}"
    return sql, params


async def pages(
    engine: AsyncEngine, query: Query, size: int | None = None, columns: str = _COLUMNS
) -> AsyncGenerator[list[Any]]:
    """The selected entries in seq order, ``size`` (``PAGE``) rows a page, on one pooled connection:
    :data:`RawRow` tuples, or rows of ``columns`` (:data:`INDEXED`).

    Close the iterator (``contextlib.aclosing``) when leaving it early, so the
    connection goes back to the pool at once.
    """
    size = size or PAGE
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        if conn.dialect.name == "postgresql":
            scan = _asyncpg(driver, *select_sql(query, lambda n: f"${n}", columns), size)
        else:
            scan = _aiosqlite(driver, *select_sql(query, lambda _: "?", columns), size)
        async with aclosing(scan):  # cursor and transaction end before the connection goes back
            async for page in scan:
                yield page


async def _aiosqlite(db: Any, sql: str, params: list[Any], size: int) -> AsyncGenerator[list[Any]]:
    # The connection is in autocommit mode (see engine.create_engine): the SELECT is its own
    # read transaction, a consistent snapshot that takes no write lock.
    cursor = await db.execute(sql, params)
    ahead = asyncio.ensure_future(cursor.fetchmany(size))
    try:
        # the next page is read on aiosqlite's thread while the caller works on this one
        while rows := await ahead:
            ahead = asyncio.ensure_future(cursor.fetchmany(size))
            yield rows
    finally:
        await _settle(ahead)
        await cursor.close()


async def _asyncpg(conn: Any, sql: str, params: list[Any], size: int) -> AsyncGenerator[list[Any]]:
    # A server-side cursor needs a transaction; read-only, it is one consistent snapshot.
    async with conn.transaction(readonly=True):
        cursor = await conn.cursor(sql, *params)
        ahead = asyncio.ensure_future(cursor.fetch(size))
        try:
            # the server reads the next page while the caller works on this one
            while records := await ahead:
                ahead = asyncio.ensure_future(cursor.fetch(size))
                yield [tuple(record) for record in records]
        finally:
            await _settle(ahead)


async def _settle(ahead: asyncio.Future[Any]) -> None:
    """Let a read-ahead finish (its rows unused) before the cursor or transaction ends."""
    await asyncio.gather(ahead, return_exceptions=True)
