"""The access record's chain on every backend (real SQLite and real PostgreSQL): appended once
per record, verified with the ledger's formula, tampering found and named, the report finds a
person's reads by document number (issue 20)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from services.core.access import PersonIndex, access_record, shown_in
from services.ledger.access_store import AccessStore
from services.ledger.chain import GENESIS, entry_hash
from services.ledger.engine import create_engine
from services.ledger.store import SqlLedger
from tests import factories
from tests.integration.ledger_backends import fresh_postgres_database, postgres_server

__all__ = ["postgres_server"]  # the fixture, imported so pytest finds it here

READER = ("audit-office", "auditor", "A. Auditor")


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AccessStore]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
    else:
        url = await fresh_postgres_database(request.getfixturevalue("postgres_server"))
    ledger = SqlLedger(create_engine(url))
    await ledger.create_schema()  # the migration makes the access tables
    yield AccessStore(ledger.engine)
    await ledger.close()


@pytest.fixture
def index(tmp_path: Path) -> PersonIndex:
    return PersonIndex.at(tmp_path / "access-index-key", create=True)


def _read(index: PersonIndex, document: str, purpose: str | None = "case 2026/114") -> dict:  # type: ignore[type-arg]
    alert = factories.alert()
    alert["data"]["persons"][0]["document"] = document
    return access_record(
        READER, "api.inbox", purpose, shown_in([alert], index), unit="IMT-GULISTAN"
    )


async def _tamper(store: AccessStore, sql: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(text(sql))


async def test_each_record_once_chained_with_the_ledgers_formula(
    store: AccessStore, index: PersonIndex
) -> None:
    records = [_read(index, f"P-{n}") for n in range(3)]
    assert await store.append(records) == 3
    assert await store.append([records[1], _read(index, "P-9")]) == 1  # a redelivery: once
    report = await store.verify()
    assert (report.ok, report.count, report.first_bad_seq) == (True, 4, None)
    [first] = [e for e in await store.latest(10) if e["seq"] == 1]
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT recorded_at, record, hash FROM access_entries WHERE seq = 1")
            )
        ).one()
    assert entry_hash(GENESIS, 1, row[0], row[1]) == row[2] == first["hash"]


async def test_the_report_finds_a_persons_reads_by_document_and_copies_no_identity(
    store: AccessStore, index: PersonIndex
) -> None:
    await store.append(
        [_read(index, "AB 123-4567"), _read(index, "CD-000"), _read(index, "ab1234567")]
    )
    found = await store.report(index.digest("AB1234567"))
    assert [e["seq"] for e in found] == [1, 3]  # spacing, dashes and case ignored
    assert found[0]["record"]["purpose"] == "case 2026/114"
    assert found[0]["record"]["principal"] == "audit-office"
    async with store.engine.connect() as conn:
        stored = " ".join(
            r[0] for r in await conn.execute(text("SELECT record FROM access_entries"))
        )
    assert "AB 123-4567" not in stored
    assert "Example Driver" not in stored
    assert await store.report(index.digest("nobody")) == []


@pytest.mark.parametrize(
    ("sql", "seq"),
    [
        (
            "UPDATE access_entries SET record = replace(record, 'case 2026/114', 'routine') WHERE seq = 2",
            2,
        ),
        ("UPDATE access_entries SET principal = 'someone-else' WHERE seq = 3", 3),
        ("DELETE FROM access_entries WHERE seq = 2", 2),
        ("DELETE FROM access_persons WHERE seq = 2", 2),
        ("INSERT INTO access_persons (person, seq) VALUES ('ab', 1)", 1),
    ],
    ids=["record edited", "column edited", "entry deleted", "index row deleted", "index row added"],
)
async def test_tampering_is_detected_and_named(
    store: AccessStore, index: PersonIndex, sql: str, seq: int
) -> None:
    await store.append([_read(index, f"P-{n}") for n in range(4)])
    assert (await store.verify()).ok
    await _tamper(store, sql)
    report = await store.verify()
    assert not report.ok
    assert report.first_bad_seq == seq, report.problems


async def test_concurrent_writers_keep_one_gapless_chain(
    store: AccessStore, index: PersonIndex
) -> None:
    await asyncio.gather(*(store.append([_read(index, f"P-{n}")]) for n in range(12)))
    report = await store.verify()
    assert (report.ok, report.count) == (True, 12)
