"""The SQL ledger on real SQLite: idempotent append, gapless chain, tamper detection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from schemas.events import CloudEvent
from services.ledger.chain import GENESIS, entry_hash
from services.ledger.store import SqlLedger, create_engine
from tests import factories


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqlLedger]:
    store = SqlLedger(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"))
    await store.create_schema()
    try:
        yield store
    finally:
        await store.close()


def _events(n: int) -> list[CloudEvent]:
    return [CloudEvent.model_validate(factories.seizure(grams=1000 + i)) for i in range(n)]


async def test_append_assigns_gapless_seqs_and_counts_duplicates(ledger: SqlLedger) -> None:
    first, second = _events(3), _events(2)
    assert (await ledger.append(first)).appended == (1, 2, 3)
    result = await ledger.append([first[1], *second, second[0]])
    assert result.appended == (4, 5)
    assert result.duplicates == 2
    assert await ledger.count() == 5


async def test_chain_is_recomputable_from_the_stored_text(ledger: SqlLedger) -> None:
    await ledger.append(_events(3))
    entries = [e async for e in ledger.entries()]
    prev = GENESIS
    async with ledger.engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT seq, recorded_at, event, hash FROM ledger_entries"))
        ).all()
    for entry, row in zip(entries, rows, strict=True):
        assert entry.prev_hash == prev
        assert entry_hash(prev, row.seq, row.recorded_at, row.event) == row.hash == entry.hash
        prev = entry.hash
    report = await ledger.verify()
    assert (report.ok, report.count, report.head) == (True, 3, prev)


async def test_entries_filter_and_page(ledger: SqlLedger) -> None:
    await ledger.append(_events(5))
    assert [e.seq for e in [x async for x in ledger.entries(after=2, limit=2)]] == [3, 4]
    assert [x async for x in ledger.entries(types=["alert.raised"])] == []


@pytest.mark.parametrize(
    ("tamper", "bad_seq"),
    [
        ("UPDATE ledger_entries SET event = replace(event, 'heroin', 'flour') WHERE seq = 2", 2),
        ("DELETE FROM ledger_entries WHERE seq = 3", 3),
        ("UPDATE ledger_entries SET hash = prev_hash WHERE seq = 4", 4),
    ],
)
async def test_verify_names_the_first_bad_seq(ledger: SqlLedger, tamper: str, bad_seq: int) -> None:
    await ledger.append(_events(5))
    async with ledger.engine.begin() as conn:
        await conn.execute(text(tamper))
    report = await ledger.verify()
    assert report.ok is False
    assert report.first_bad_seq == bad_seq
    assert report.problems
