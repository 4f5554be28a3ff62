"""The ledger's contract, run against every backend (real SQLite and real PostgreSQL)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path

import pytest
from sqlalchemy import text

from schemas.events import CloudEvent
from services.bus import Unavailable
from services.ledger import audit, scan
from services.ledger.chain import GENESIS, entry_hash
from services.ledger.signing import Signer, load_or_create_signer
from services.ledger.store import CheckpointPolicy, Query, SqlLedger, create_engine
from tests import factories
from tests.integration.ledger_backends import fresh_postgres_database, postgres_server
from tests.unit.adapter_helpers import convert, event

__all__ = ["postgres_server"]  # the fixture, imported so pytest finds it here

LedgerFactory = Callable[..., SqlLedger]
DEFAULT_POLICY = CheckpointPolicy()


@pytest.fixture(params=["sqlite", "postgresql"])
async def make_ledger(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[LedgerFactory]:
    """Builds ledgers on one fresh database of the backend under test."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
    else:
        url = await fresh_postgres_database(request.getfixturevalue("postgres_server"))
    signer = load_or_create_signer(tmp_path / "key.pem")
    made: list[SqlLedger] = []

    def make(
        policy: CheckpointPolicy = DEFAULT_POLICY, signer: Signer | None = signer
    ) -> SqlLedger:
        made.append(SqlLedger(create_engine(url), signer, policy))
        return made[-1]

    yield make
    for ledger in made:
        await ledger.close()


@pytest.fixture
async def ledger(make_ledger: LedgerFactory) -> SqlLedger:
    store = make_ledger()
    await store.create_schema()
    return store


def _events(n: int) -> list[CloudEvent]:
    return [CloudEvent.model_validate(factories.seizure(grams=1000 + i)) for i in range(n)]


async def _tamper(ledger: SqlLedger, sql: str) -> None:
    async with ledger.engine.begin() as conn:
        await conn.execute(text(sql))


async def test_append_assigns_gapless_seqs_and_counts_duplicates(ledger: SqlLedger) -> None:
    first, second = _events(3), _events(2)
    assert (await ledger.append(first)).appended == (1, 2, 3)
    result = await ledger.append([first[1], *second, second[0]])
    assert result.appended == (4, 5)
    assert result.duplicates == 2
    assert await ledger.count() == 5


async def test_migrations_are_idempotent(ledger: SqlLedger) -> None:
    await ledger.append(_events(2))
    await ledger.create_schema()
    assert await ledger.count() == 2


async def test_chain_is_recomputable_from_the_stored_text(ledger: SqlLedger) -> None:
    await ledger.append(_events(3))
    prev = GENESIS
    async for row in ledger.rows():
        assert row.prev_hash == prev
        assert entry_hash(prev, row.seq, row.recorded_at, row.event) == row.hash
        prev = row.hash
    report = await ledger.verify()
    assert (report.ok, report.count, report.head) == (True, 3, prev)


async def test_queries_filter_and_page(ledger: SqlLedger) -> None:
    events = _events(5)
    alert = CloudEvent.model_validate(factories.alert(time="2026-01-05T10:00:00+05:00"))
    await ledger.append([*events, alert])
    assert [e.seq async for e in ledger.entries(Query(after=2, limit=2))] == [3, 4]
    assert [e.seq async for e in ledger.entries(Query(types=("alert.raised",)))] == [6]
    january = Query(since="2026-01-05T04:59:00.000000Z", until="2026-01-05T05:01:00.000000Z")
    assert [e.event["id"] async for e in ledger.entries(january)] == [alert.id]
    assert [e.seq async for e in ledger.entries(Query(about=alert.id))] == [6]


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
    await _tamper(ledger, tamper)
    report = await ledger.verify()
    assert report.ok is False
    assert report.first_bad_seq == bad_seq
    assert report.problems


def _mixed() -> list[CloudEvent]:
    """Seizures and alerts, with and without subject, in UTC and in Uzbekistan time."""
    return [
        *_events(2),
        CloudEvent.model_validate(factories.alert(time="2026-01-05T10:00:00+05:00")),
        CloudEvent.model_validate(factories.seizure(subject='case "7" }, {')),
        *_events(2),
    ]


@pytest.mark.parametrize(
    ("column", "forged"),
    [
        ("type", "'alert.delivered'"),  # replay --type and stats no longer see seq 4
        ("event_time", "'2001-01-01T00:00:00.000000Z'"),  # --since/--until misfile it
        ("subject", "NULL"),  # the trail of its case loses it
        ("subject", "'case \"7\" }, {x'"),
        ("event_id", "'someone-else'"),  # a re-publish of it would be recorded again
        ("source", "'/units/BLO-OYBEK'"),
    ],
)
async def test_verify_checks_every_indexed_column_against_the_hashed_text(
    ledger: SqlLedger, column: str, forged: str
) -> None:
    await ledger.append(_mixed())
    await _tamper(ledger, f"UPDATE ledger_entries SET {column} = {forged} WHERE seq = 4")
    report = await ledger.verify()
    assert report.ok is False
    assert report.first_bad_seq == 4
    assert column in report.problems[0]


@pytest.mark.parametrize(
    ("column", "forged", "seq"),
    [
        ("event_time", "'2026-01-05T10:00:00+05:00'", 3),  # the text's own words, not its UTC form
        ("subject", "'CASE-1'", 3),  # an alert without subject gets one
        ("type", "'seizure.reported'", 3),
    ],
)
async def test_an_indexed_column_must_be_exactly_what_the_writer_derives(
    ledger: SqlLedger, column: str, forged: str, seq: int
) -> None:
    await ledger.append(_mixed())
    assert (await ledger.verify()).ok
    await _tamper(ledger, f"UPDATE ledger_entries SET {column} = {forged} WHERE seq = {seq}")
    report = await ledger.verify()
    assert (report.ok, report.first_bad_seq) == (False, seq)


async def test_reads_stream_page_by_page(
    make_ledger: LedgerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan, "PAGE", 4)  # pages end mid-chain and next to checkpoints
    ledger = make_ledger(CheckpointPolicy(every=4, interval=3600))
    await ledger.create_schema()
    for _ in range(2):
        await ledger.append(_events(5))
    assert [e.seq async for e in ledger.entries()] == list(range(1, 11))
    assert [e.seq async for e in ledger.entries(Query(after=2, limit=5))] == [3, 4, 5, 6, 7]
    out = io.StringIO()
    assert await audit.replay(ledger, Query(after=3), out) == 7
    replayed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert replayed == [e.to_dict() async for e in ledger.entries(Query(after=3))]
    report = await ledger.verify()
    assert (report.ok, report.count, report.checkpoints) == (True, 10, 2)
    await _tamper(ledger, "UPDATE ledger_entries SET recorded_at = 'x' WHERE seq = 6")
    report = await ledger.verify()
    assert (report.ok, report.first_bad_seq, report.count) == (False, 6, 5)


async def test_checkpoints_are_signed_every_n_entries(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(CheckpointPolicy(every=10, interval=3600))
    await ledger.create_schema()
    for _ in range(5):
        await ledger.append(_events(4))
    assert [c.size for c in await ledger.checkpoints()] == [4, 16]
    report = await ledger.verify()
    assert (report.ok, report.checkpoints) == (True, 2)


async def test_truncating_the_tail_is_caught_by_a_checkpoint(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(CheckpointPolicy(every=5, interval=3600))
    await ledger.create_schema()
    await ledger.append(_events(12))
    await _tamper(ledger, "DELETE FROM ledger_entries WHERE seq > 9")
    report = await ledger.verify()
    assert report.ok is False
    assert report.first_bad_seq == 10
    assert "truncated" in report.problems[0]


async def test_a_rewritten_chain_is_caught_by_a_checkpoint(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(CheckpointPolicy(every=3, interval=3600))
    await ledger.create_schema()
    await ledger.append(_events(3))
    # a forger who recomputes every hash after editing: the chain is consistent, the signature is not
    async with ledger.engine.begin() as conn:
        rows = (
            await conn.execute(
                text("SELECT seq, recorded_at, event FROM ledger_entries ORDER BY seq")
            )
        ).all()
        prev = GENESIS
        for row in rows:
            forged = row.event.replace("heroin", "flour")
            digest = entry_hash(prev, row.seq, row.recorded_at, forged)
            await conn.execute(
                text(
                    "UPDATE ledger_entries SET event = :e, prev_hash = :p, hash = :h WHERE seq = :s"
                ),
                {"e": forged, "p": prev, "h": digest, "s": row.seq},
            )
            prev = digest
    report = await ledger.verify()
    assert report.ok is False
    assert report.first_bad_seq == 3
    assert "signed checkpoint" in report.problems[0]


async def test_a_forged_checkpoint_signature_is_caught(ledger: SqlLedger) -> None:
    await ledger.append(_events(2))
    await _tamper(
        ledger,
        "UPDATE ledger_checkpoints SET signature = replace(signature, substr(signature, 1, 2), 'ff')",
    )
    await _tamper(ledger, "UPDATE ledger_checkpoints SET signed_at = '2000-01-01T00:00:00.000000Z'")
    report = await ledger.verify()
    assert report.ok is False
    assert "signature" in report.problems[0]


def _sample_seizures() -> list[CloudEvent]:
    """Every seizure of the customs and police samples, as ``liaison import`` publishes them."""
    events = []
    for adapter, sample in (("customs-csv", "scc-seizures.csv"), ("mia-jsonl", "mia-cases.jsonl")):
        content = (resources.files("services.ingest.adapters") / "samples" / sample).read_bytes()
        events += [event(outcome) for outcome in convert(adapter, content).values()]
    return events


async def test_one_seizure_reported_by_two_agencies_counts_once(ledger: SqlLedger) -> None:
    """Issue 12.10: customs and police both report the 20 kg 32 g of heroin of 14 March 2024."""
    await ledger.append(_sample_seizures())
    heroin = [
        row
        for row in await audit.seizure_stats(ledger)
        if (row["substance"], row["month"]) == ("heroin", "2024-03")
    ]
    assert [(r["unit"], r["quantity"], r["seizures"], r["reports"]) for r in heroin] == [
        ("BLO-OYBEK", 20.032, 1, 2),  # the customs report came first; the police one is kept
        ("BLO-SARIOSIYO", 12.5, 1, 1),
    ]
    out = io.StringIO()
    assert await audit.replay(ledger, Query(types=("seizure.reported",)), out) == 12


async def test_stats_count_a_case_once_with_its_first_reports_figures(ledger: SqlLedger) -> None:
    first = factories.seizure("BLO-OYBEK", grams=20032)
    first["data"]["case"] = "12-3456/2024"
    second = factories.seizure("IMT-GULISTAN", grams=20030)  # weighed again by the police
    second["data"]["case"] = "12-3456/2024"
    other = factories.seizure("IMT-GULISTAN", grams=500)  # no case: a seizure of its own
    await ledger.append([CloudEvent.model_validate(e) for e in (first, second, other)])
    rows = await audit.seizure_stats(ledger)
    assert [(r["unit"], r["quantity"], r["seizures"], r["reports"]) for r in rows] == [
        ("BLO-OYBEK", 20.032, 1, 2),
        ("IMT-GULISTAN", 0.5, 1, 1),
    ]


async def test_concurrent_writers_keep_one_chain(make_ledger: LedgerFactory) -> None:
    first, second = make_ledger(), make_ledger()
    await first.create_schema()
    batches = [_events(20) for _ in range(10)]
    await asyncio.gather(*(w.append(b) for w, b in zip([first, second] * 5, batches, strict=True)))
    report = await first.verify()
    assert (report.ok, report.count) == (True, 200)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:////nonexistent-dir/ledger.sqlite3",
        "postgresql+asyncpg://nobody@127.0.0.1:9/nothing",  # nothing listens on the discard port
    ],
    ids=["sqlite", "postgresql"],
)
async def test_a_database_that_is_down_is_unavailable_not_the_events_fault(url: str) -> None:
    ledger = SqlLedger(create_engine(url))
    try:
        with pytest.raises(Unavailable):  # a claimer retries it without counting toward the cap
            await ledger.append(_events(1))
    finally:
        await ledger.close()
