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
from services.core.bus import Unavailable
from services.ledger import audit, columns, scan, tables
from services.ledger.chain import GENESIS, entry_hash
from services.ledger.checkpoints import Checkpoint
from services.ledger.engine import create_engine
from services.ledger.scan import Query
from services.ledger.signing import Signer, checkpoint_message, load_or_create_signer
from services.ledger.store import CheckpointPolicy, SqlLedger
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
    by_source = Query(sources=("/units/BLO-OYBEK",))
    assert [e.seq async for e in ledger.entries(by_source)] == [6]
    assert [e.seq async for e in ledger.entries(Query(sources=("/units/NOWHERE",)))] == []


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
@pytest.mark.parametrize("where", ["signed", "unsigned tail", "verified without the key"])
async def test_verify_checks_every_indexed_column_against_the_hashed_text(
    make_ledger: LedgerFactory, column: str, forged: str, where: str
) -> None:
    """Issue 12.3. Checked against the digest a checkpoint signed, or entry by entry where none
    covers them (or none can be trusted)."""
    ledger = make_ledger(CheckpointPolicy(every=1000, interval=3600))
    await ledger.create_schema()
    if where == "unsigned tail":
        await ledger.append(_events(1))  # the first append signs its head; the next ones wait
    await ledger.append(_mixed())
    seq = 5 if where == "unsigned tail" else 4
    unsigned = await ledger.verify()
    assert (unsigned.ok, unsigned.unsigned) == (True, 6 if where == "unsigned tail" else 0)
    await _tamper(ledger, f"UPDATE ledger_entries SET {column} = {forged} WHERE seq = {seq}")
    verifier = make_ledger(signer=None) if where == "verified without the key" else ledger
    report = await verifier.verify()
    assert report.ok is False
    assert report.first_bad_seq == seq
    assert column in report.problems[0]


async def test_the_database_and_the_signer_write_the_same_index_texts(
    make_ledger: LedgerFactory,
) -> None:
    """The digest a checkpoint signs (from what the signer wrote) is the one verification
    computes from the database's columns, on either backend, non-ASCII and absent subjects
    included."""
    ledger = make_ledger(CheckpointPolicy(every=4, interval=3600))
    await ledger.create_schema()
    events = [*_mixed(), CloudEvent.model_validate(factories.alert(subject="Дело №7 — ✓"))]
    await ledger.append(events)
    async with ledger.engine.connect() as conn:
        stored = [
            row[0]
            for row in await conn.exec_driver_sql(
                f"SELECT {columns.INDEX_SQL} FROM ledger_entries ORDER BY seq"
            )
        ]
    derived = [columns.index_of(ev.to_json().decode()) for ev in events]
    assert stored == derived
    first = (await ledger.checkpoints())[0]
    assert (first.size, first.index_hash) == (4, columns.index_digest(stored[:4]))


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
    # the first append signs its head; then every 10 entries, mid-batch (never more apart)
    assert [c.size for c in await ledger.checkpoints()] == [4, 14]
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


async def _rechain(ledger: SqlLedger, old: str, new: str) -> None:
    """A forger with the database: edits entries and recomputes every hash after them."""
    async with ledger.engine.begin() as conn:
        rows = (
            await conn.execute(
                text("SELECT seq, recorded_at, event FROM ledger_entries ORDER BY seq")
            )
        ).all()
        prev = GENESIS
        for row in rows:
            forged = row.event.replace(old, new)
            digest = entry_hash(prev, row.seq, row.recorded_at, forged)
            await conn.execute(
                text(
                    "UPDATE ledger_entries SET event = :e, prev_hash = :p, hash = :h WHERE seq = :s"
                ),
                {"e": forged, "p": prev, "h": digest, "s": row.seq},
            )
            prev = digest


async def test_an_insider_cannot_rewrite_the_ledger_and_have_it_signed(
    make_ledger: LedgerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13.2: every checkpoint deleted, entry 1 edited and re-chained."""
    ledger = make_ledger(CheckpointPolicy(every=3, interval=3600))
    await ledger.create_schema()
    await ledger.append(_events(5))
    assert ledger.notary is not None
    await ledger.notary.flush()  # the insider comes later than the record's write
    await _tamper(ledger, "DELETE FROM ledger_checkpoints")
    await _rechain(ledger, "heroin", "flour")

    report = await ledger.verify()  # on the ledger's host: its record names what it signed
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert "entries up to here were rewritten" in report.problems[0]
    elsewhere = make_ledger(CheckpointPolicy(every=3, interval=3600), signer=None)
    report = await elsewhere.verify()  # without it: 5 entries and no checkpoint
    assert (report.ok, report.first_bad_seq) == (False, 1)
    assert "more than CHECKPOINT_EVERY (3)" in report.problems[0]

    with pytest.raises(Unavailable, match="checkpoints were deleted"):
        await ledger.append(_events(1))  # the signer refuses to extend, let alone sign, the forgery
    with pytest.raises(Unavailable):
        await ledger.checkpoint_if_due(force=True)
    assert await ledger.ready() is False
    assert "REFUSING to append or sign" in caplog.text
    restarted = make_ledger(CheckpointPolicy(every=3, interval=3600))  # its record is on disk
    with pytest.raises(Unavailable):
        await restarted.checkpoint_if_due(force=True)
    assert await ledger.checkpoints() == []  # nothing was signed
    assert await ledger.count() == 5


async def test_the_signer_resumes_once_the_database_is_restored(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(CheckpointPolicy(every=2, interval=3600))
    await ledger.create_schema()
    await ledger.append(_events(5))
    last = (await ledger.checkpoints())[-1]
    await _tamper(ledger, f"DELETE FROM ledger_checkpoints WHERE size = {last.size}")
    with pytest.raises(Unavailable, match="checkpoints were deleted"):
        await ledger.append(_events(1))
    assert await ledger.ready() is False
    async with ledger.engine.begin() as conn:  # the operator restores it from a backup
        await conn.execute(tables.checkpoints.insert(), [last.columns()])
    assert (await ledger.append(_events(1))).appended == (6,)
    assert await ledger.ready() is True
    assert (await ledger.verify()).ok


async def test_the_signer_notices_its_own_unsigned_entries_deleted(
    make_ledger: LedgerFactory,
) -> None:
    ledger = make_ledger(CheckpointPolicy(every=1000, interval=3600))
    await ledger.create_schema()
    await ledger.append(_events(3))  # signed: the first append signs its head
    await ledger.append(_events(2))  # 4-5: not signed yet
    await _tamper(ledger, "DELETE FROM ledger_entries WHERE seq > 3")
    with pytest.raises(Unavailable, match="entries were deleted"):
        await ledger.append(_events(1))


async def test_the_last_signed_checkpoint_is_kept_beside_the_key(
    make_ledger: LedgerFactory, tmp_path: Path
) -> None:
    ledger = make_ledger(CheckpointPolicy(every=2, interval=3600))
    await ledger.create_schema()
    await ledger.append(_events(5))
    assert ledger.notary is not None
    await ledger.notary.flush()  # written in the background: the append does not wait for it
    record = tmp_path / "key.last-checkpoint.json"
    assert record.stat().st_mode & 0o777 == 0o600
    checkpoints = await ledger.checkpoints()
    assert Checkpoint.from_dict(json.loads(record.read_text())) == checkpoints[-1]
    assert [(c.version, c.size) for c in checkpoints] == [(2, 2), (2, 4)]
    assert checkpoints[1].prev == checkpoints[0].digest()  # each signs the one before
    record.write_text("{not json")
    restarted = make_ledger(CheckpointPolicy(every=2, interval=3600))
    with pytest.raises(Unavailable, match="unreadable"):  # never silently trust the database
        await restarted.append(_events(1))
    assert (await restarted.verify()).ok  # the database itself is intact


async def test_a_checkpoint_deleted_from_the_middle_breaks_their_chain(
    make_ledger: LedgerFactory,
) -> None:
    ledger = make_ledger(CheckpointPolicy(every=2, interval=3600))
    await ledger.create_schema()
    await ledger.append(_events(7))
    assert [c.size for c in await ledger.checkpoints()] == [2, 4, 6]
    await _tamper(ledger, "DELETE FROM ledger_checkpoints WHERE size = 4")
    report = await ledger.verify()
    assert (report.ok, report.first_bad_seq) == (False, 3)  # entries 3-6: no checkpoint within 2
    assert any("checkpoint chain is broken" in problem for problem in report.problems)


async def test_entries_signed_by_no_checkpoint_beyond_every_fail(
    make_ledger: LedgerFactory,
) -> None:
    unsigned = make_ledger(CheckpointPolicy(every=3, interval=3600), signer=None)
    await unsigned.create_schema()
    await unsigned.append(_events(4))  # written without the key: nothing signed them
    report = await make_ledger(CheckpointPolicy(every=3, interval=3600)).verify()
    assert (report.ok, report.first_bad_seq) == (False, 1)
    assert "more than CHECKPOINT_EVERY (3)" in report.problems[0]


async def test_a_bundle_ends_at_a_checkpoint_and_verifies_only_with_a_trusted_key(
    make_ledger: LedgerFactory, tmp_path: Path
) -> None:
    ledger = make_ledger(CheckpointPolicy(every=1000, interval=3600))
    await ledger.create_schema()
    await ledger.append(_events(3))
    await ledger.append(_events(2))  # entries 4-5 not signed yet
    assert [c.size for c in await ledger.checkpoints()] == [3]
    bundle = tmp_path / "bundle.jsonl"
    with bundle.open("w") as out:
        assert await audit.export_bundle(ledger, out) == 5
    assert ledger.signer is not None
    trusted = {ledger.signer.key_id: ledger.signer.public_key}
    report = audit.verify_bundle(bundle, trusted)
    assert (report.ok, report.count, report.checkpoints, report.origin_verified) == (
        True,
        5,
        2,
        True,
    )
    assert audit.verify_bundle(bundle).origin_verified is False  # its own key proves nothing
    lines = bundle.read_text().splitlines(keepends=True)
    stripped = tmp_path / "stripped.jsonl"
    stripped.write_text("".join(line for line in lines if '"checkpoint"' not in line))
    report = audit.verify_bundle(stripped, trusted)
    assert (report.ok, report.first_bad_seq) == (False, 1)
    assert "does not end at a signed checkpoint" in report.problems[0]


async def test_version_1_checkpoints_still_verify_and_the_chain_continues_from_them(
    make_ledger: LedgerFactory, tmp_path: Path
) -> None:
    old = make_ledger(CheckpointPolicy(every=1000, interval=3600), signer=None)
    await old.create_schema()
    await old.append(_events(3))
    signer = load_or_create_signer(tmp_path / "key.pem")
    head = (await old.verify()).head
    at = "2026-01-01T00:00:00.000000Z"
    v1 = Checkpoint(3, head, at, signer.key_id, signer.sign(checkpoint_message(3, head, at)))
    async with old.engine.begin() as conn:  # as a version before the chain signed it
        await conn.execute(tables.checkpoints.insert(), [v1.columns()])
    ledger = make_ledger(CheckpointPolicy(every=1000, interval=3600))
    await ledger.append(_events(2))  # no record beside the key yet: the database's v1 is adopted
    await ledger.checkpoint_if_due(force=True)
    checkpoints = await ledger.checkpoints()
    assert [(c.version, c.size) for c in checkpoints] == [(1, 3), (2, 5)]
    assert checkpoints[1].prev == v1.digest()
    report = await ledger.verify()
    assert (report.ok, report.checkpoints) == (True, 2)


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


@pytest.mark.parametrize("seq", [1, 4, 6, 7])  # a page's first, after a checkpoint, one, the tail
async def test_an_indexed_column_is_checked_wherever_its_entry_falls(
    make_ledger: LedgerFactory, seq: int
) -> None:
    """Verification slices each page at the checkpoints inside it: an entry at the edge of a
    slice is checked like any other (mutation testing: slices shifted by one survived)."""
    ledger = make_ledger(CheckpointPolicy(every=3, interval=3600))
    await ledger.create_schema()
    await ledger.append(_events(7))
    assert [c.size for c in await ledger.checkpoints()] == [3, 6]  # 7 waits: the tail
    await _tamper(ledger, f"UPDATE ledger_entries SET type = 'alert.delivered' WHERE seq = {seq}")
    report = await ledger.verify()
    assert (report.ok, report.first_bad_seq) == (False, seq)
    assert report.problems[0].startswith(f"seq {seq}: indexed column(s) type disagree")


@pytest.mark.parametrize(("entries", "problem"), [(3, None), (4, "entries 1-4 unsigned")])
async def test_an_unsigned_tail_may_be_every_entries_long_and_no_longer(
    make_ledger: LedgerFactory, entries: int, problem: str | None
) -> None:
    unsigned = make_ledger(CheckpointPolicy(every=3, interval=3600), signer=None)
    await unsigned.create_schema()
    await unsigned.append(_events(entries))  # written without the key: nothing signed them
    report = await make_ledger(CheckpointPolicy(every=3, interval=3600)).verify()
    if problem is None:
        assert (report.ok, report.unsigned) == (True, 3)
    else:
        assert report.problems == [
            f"seq 1: {problem}, more than CHECKPOINT_EVERY (3) after the last signed "
            "checkpoint: checkpoints are missing"
        ]


async def test_the_verify_document_has_the_documented_members(ledger: SqlLedger) -> None:
    """docs/http-api.md: ``{"ok", "count", "head", "first_bad_seq"}`` and what it adds."""
    await ledger.append(_events(2))
    doc = (await ledger.verify()).to_dict()
    assert ledger.signer is not None
    [*_, last] = [row async for page in scan.pages(ledger.engine, Query()) for row in page]
    assert doc == {
        "ok": True, "count": 2, "head": last[1], "first_bad_seq": None, "checkpoints": 1,
        "problems": [], "origin_verified": True, "trusted_keys": [ledger.signer.key_id],
        "unsigned": 0,
    }  # fmt: skip
