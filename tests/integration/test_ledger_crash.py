"""The ledger service SIGKILLed mid-batch, restarted: nothing lost, nothing duplicated.

``liaison serve ledger`` runs as a real separate process on the session's
server and a SQLite file. Events are published while it runs (never more
than ``LEAD`` ahead of what it has recorded, so it always has a batch in
hand). It is killed three times, each time in a chosen state: holding a
batch it has read but not committed; half-way through its successor's
reclaiming of the dead consumer's entries; holding entries committed but
not yet acknowledged. To kill in a state rather than at a guessed moment,
the process is frozen (SIGSTOP), looked at, and either SIGKILLed there or
let go (SIGCONT). For the third state the server first holds every write
(``CLIENT PAUSE … WRITE``): the ledger commits what it has read, and its
acknowledgement waits at the server, so the state lasts until the kill
(the ledger acknowledges right after each commit, too soon to catch by
chance). A last restart must then record everything.

The claimer's idle time is shortened through ``LIAISON_CLAIM_IDLE`` so that
reclaiming starts after one second rather than thirty. Poison entries (not
JSON, not an event) must land on the dead-letter stream with their reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio import Redis

from schemas.events import CloudEvent
from services.core import bus, streams
from services.core.settings import Settings
from services.ledger.open import open_ledger
from tests import factories
from tests.integration.conftest import seen_index
from tests.integration.processes import ServiceProcess, ServiceProcesses, wait_for

TOTAL = 6000
"""Events published in the crash test."""
BATCH = 250
"""Events per publish call (one Lua script each)."""
LEAD = 1500
"""The publisher stays at most this many events ahead of the ledger."""
CLAIM_IDLE = "1s"
"""How long a dead consumer's entries stay pending before the claimer takes them."""
WRITES_PAUSED_MS = 20_000
"""Longest the server holds writes for kill 3 (it is let go right after the kill)."""


@dataclass
class Ledger:
    """Where one test's ledger lives, and how to run it."""

    db: Path
    settings: Settings
    processes: ServiceProcesses


@pytest.fixture
def ledger_home(tmp_path: Path, redis_url: str) -> Iterator[Ledger]:
    """A data directory and SQLite file; every process started is reaped at the end."""
    db = tmp_path / "ledger.sqlite3"
    env = {
        "LIAISON_REDIS_URL": redis_url,
        "LIAISON_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "LIAISON_DATA_DIR": str(tmp_path),
        "LIAISON_CLAIM_IDLE": CLAIM_IDLE,
    }
    settings = Settings(
        redis_url=redis_url, database_url=env["LIAISON_DATABASE_URL"], data_dir=tmp_path
    )
    processes = ServiceProcesses(tmp_path / "logs", env)
    try:
        yield Ledger(db, settings, processes)
    finally:
        processes.close()


# --- what the ledger has recorded (read straight from its SQLite file) ----------------------


def _read(db: Path, sql: str, params: Sequence[str] = ()) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return conn.execute(sql, params).fetchall()


def recorded(db: Path) -> int:
    """Entries committed so far; 0 until the ledger has created its schema."""
    try:
        return int(str(_read(db, "SELECT count(*) FROM ledger_entries")[0][0]))
    except sqlite3.OperationalError:  # no file or no table yet
        return 0


def committed_among(db: Path, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these ``(source, id)`` are committed."""
    if not keys:
        return set()
    marks = ",".join("?" * len(keys))
    sql = f"SELECT source, event_id FROM ledger_entries WHERE event_id IN ({marks})"
    rows = _read(db, sql, [event_id for _, event_id in keys])
    return {(str(source), str(event_id)) for source, event_id in rows} & set(keys)


def recorded_keys(db: Path) -> set[tuple[str, str]]:
    """The ``(source, id)`` of every committed entry."""
    try:
        rows = _read(db, "SELECT source, event_id FROM ledger_entries")
    except sqlite3.OperationalError:
        return set()
    return {(str(source), str(event_id)) for source, event_id in rows}


# --- the consumer group ------------------------------------------------------------------


async def group_info(redis: Redis, stream: str) -> dict[str, object]:
    """XINFO GROUPS of the ledger's group on ``stream``."""
    groups = await redis.xinfo_groups(stream)
    info: dict[str, object] = next(g for g in groups if g["name"] == b"ledger")
    return info


async def pending_of(redis: Redis, processes: list[ServiceProcess]) -> list[bytes]:
    """Seizure entries still pending for these processes' consumers (reader and claimer)."""
    consumers = await redis.xinfo_consumers(streams.SEIZURES, streams.LEDGER_GROUP)
    tags = tuple(f":{p.pid}:" for p in processes)
    ids: list[bytes] = []
    for consumer in consumers:
        if any(tag in consumer["name"].decode() for tag in tags) and consumer["pending"]:
            rows = await redis.xpending_range(
                streams.SEIZURES, streams.LEDGER_GROUP, min="-", max="+", count=TOTAL,
                consumername=consumer["name"],
            )  # fmt: skip
            ids += [_bytes(row["message_id"]) for row in rows]
    return ids


async def entry_keys(redis: Redis) -> dict[bytes, tuple[str, str]]:
    """Stream entry id → ``(source, id)`` of every event published (the publish-side index)."""
    seen = await seen_index(redis)
    return {entry: _split(key.decode()) for key, entry in seen.items()}


def _bytes(value: object) -> bytes:
    assert isinstance(value, bytes), value
    return value


def _split(key: str) -> tuple[str, str]:
    source, _, event_id = key.partition(" ")
    return source, event_id


async def dead_letters(redis: Redis) -> list[dict[bytes, bytes]]:
    """The dead-letter stream's entries' fields, oldest first."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(streams.DEAD_LETTERS)  # type: ignore[assignment]
    return [fields for _, fields in entries]


# --- publishing while the ledger runs --------------------------------------------------


@dataclass
class Feeder:
    """Publishes ``events`` in batches up to ``target``, staying ``LEAD`` ahead of the ledger."""

    redis: Redis
    db: Path
    events: list[CloudEvent]
    target: int = 0
    published: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        publisher = bus.RedisPublisher(self.redis)
        while self.published < len(self.events):
            if self.published >= self.target or self.published - recorded(self.db) >= LEAD:
                await asyncio.sleep(0.01)
                continue
            batch = self.events[self.published : min(self.published + BATCH, self.target)]
            assert all(await publisher.publish(batch)), "a fresh event was taken for a duplicate"
            self.published += len(batch)
        self.done.set()


@dataclass
class Kill:
    """What one SIGKILL left behind."""

    when: str
    recorded: int
    published: int
    stranded: int
    """Entries the dead process had read (or claimed) but not acknowledged."""
    stranded_committed: int
    """Of those, how many were already committed (a redelivery must not duplicate them)."""
    earlier_pending: int
    """Entries of earlier dead processes still pending at the kill."""

    @property
    def uncommitted(self) -> int:
        """Stranded entries that only the claimer can save from being lost."""
        return self.stranded - self.stranded_committed


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sigkill_mid_batch_loses_and_duplicates_nothing(
    redis: Redis, ledger_home: Ledger
) -> None:
    db, processes = ledger_home.db, ledger_home.processes
    events = [CloudEvent.model_validate(factories.seizure(grams=1 + i)) for i in range(TOTAL)]
    published_keys = {(ev.source, ev.id) for ev in events}
    assert len(published_keys) == TOTAL
    await bus.ensure_groups(redis)
    feeder = Feeder(redis, db, events, target=TOTAL // 2)
    feeding = asyncio.create_task(feeder.run())
    dead: list[ServiceProcess] = []
    kills: list[Kill] = []
    started = time.monotonic()

    index: dict[bytes, tuple[str, str]] = {}

    async def held(process: ServiceProcess) -> tuple[int, int]:
        """Entries it has in hand (read or claimed, not acknowledged), and how many are committed."""
        entries = await pending_of(redis, [process])
        if any(entry not in index for entry in entries):
            index.update(await entry_keys(redis))
        return len(entries), len(committed_among(db, [index[entry] for entry in entries]))

    async def kill_when(
        process: ServiceProcess, when: str, ready: Callable[[], bool | Awaitable[bool]],
        state: Callable[[int, int], bool],
    ) -> None:  # fmt: skip
        """Once ``ready``, freeze it (SIGSTOP) until what it holds is in ``state``; SIGKILL it there.

        Looking at a frozen process makes the observed state exactly the state it dies in.
        """
        await wait_for(ready, f"{when}: ready", ledger_home.processes, 30)

        async def frozen_in_state() -> bool:
            process.pause()
            if state(*await held(process)):
                return True
            process.resume()
            return False

        await wait_for(frozen_in_state, when, ledger_home.processes, 30)
        assert process.running(), f"{process.name} died on its own:\n{process.output()}"
        earlier = len(await pending_of(redis, dead))
        stranded, committed = await held(process)
        process.kill()
        dead.append(process)
        now = recorded(db)
        assert 0 < now < TOTAL, f"kill '{when}' did not land mid-stream ({now} recorded)"
        kills.append(Kill(when, now, feeder.published, stranded, committed, earlier))

    try:
        await wait_for(lambda: feeder.published >= LEAD, "preload", ledger_home.processes, 10)

        # 1. a batch read but not committed: only the claimer can save it from being lost
        first = processes.start()
        await kill_when(
            first, "batch read, not committed", lambda: recorded(db) >= 1000,
            lambda entries, committed: entries > 0 and committed == 0,
        )  # fmt: skip

        # 2. half-way through the successor's reclaiming of the dead consumer's entries
        feeder.target = TOTAL * 3 // 4
        second = processes.start()
        stranded = kills[-1].stranded  # > 0: kill 1 was chosen so

        async def half_reclaimed() -> bool:
            return len(await pending_of(redis, dead)) <= stranded // 2

        await kill_when(
            second, "reclaim half-way", half_reclaimed, lambda entries, committed: entries > 0
        )

        # 3. between a commit and its acknowledgement: the redelivery must not duplicate it
        feeder.target = TOTAL
        third = processes.start()
        at_least = kills[-1].recorded + 500

        async def writes_held() -> bool:
            """Writes held at the server while it has entries in hand: it commits, then waits."""
            if recorded(db) < at_least:
                return False
            await redis.client_pause(WRITES_PAUSED_MS, all=False)
            if (await held(third))[0] > 0:
                return True
            await redis.client_unpause()
            return False

        try:
            await kill_when(
                third, "committed, not acknowledged", writes_held,
                lambda entries, committed: committed > 0,
            )  # fmt: skip
        finally:
            await redis.client_unpause()

        # 4. the last restart records everything and leaves nothing pending
        restarted = time.monotonic()
        last = processes.start()

        async def settled() -> bool:
            if not feeder.done.is_set() or recorded(db) < TOTAL:
                return False
            infos = [await group_info(redis, s) for s in streams.CANONICAL_STREAMS]
            return all(info["pending"] == 0 and info["lag"] == 0 for info in infos)

        await wait_for(settled, f"all {TOTAL} recorded, nothing pending", ledger_home.processes, 60)
        recovery = time.monotonic() - restarted
        assert await last.terminate() == 0, last.output()
    finally:
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding

    print(f"\n{TOTAL} events, {len(kills)} SIGKILLs; recovery after the last restart "
          f"{recovery:.2f}s; whole test {time.monotonic() - started:.2f}s")  # fmt: skip
    for kill in kills:
        print(f"  {kill}")
    # the kills were not vacuous: entries were in hand that only the claimer could save,
    # and entries already committed whose redelivery the ledger had to recognise
    assert sum(kill.uncommitted for kill in kills) > 0, kills
    assert sum(kill.stranded_committed for kill in kills) > 0, kills

    # every published event exactly once, seqs gapless from 1
    rows = _read(db, "SELECT seq, source, event_id FROM ledger_entries ORDER BY seq")
    assert [seq for seq, _, _ in rows] == list(range(1, TOTAL + 1))
    keys = [(str(source), str(event_id)) for _, source, event_id in rows]
    assert len(set(keys)) == len(keys), "an event was recorded twice"
    assert set(keys) == published_keys

    # the chain and its signed checkpoints verify
    store = open_ledger(ledger_home.settings, create_key=False)
    try:
        report = await store.verify()
    finally:
        await store.close()
    assert report.ok, report.problems
    assert report.count == TOTAL
    assert report.checkpoints > 0

    # nothing pending, nothing unread, nothing dead-lettered
    for stream in streams.CANONICAL_STREAMS:
        assert (await redis.xpending(stream, streams.LEDGER_GROUP))["pending"] == 0
    seizures = await group_info(redis, streams.SEIZURES)
    assert seizures["entries-read"] == TOTAL
    assert seizures["lag"] == 0
    assert await redis.xlen(streams.DEAD_LETTERS) == 0
    for process in processes.started:
        assert "Traceback" not in process.output(), process.output()


NOT_JSON = b"{not json at all"
NOT_AN_EVENT = b'{"specversion": "1.0", "id": "x"}'


async def _publish_around(
    redis: Redis, poisons: list[bytes]
) -> tuple[list[CloudEvent], list[bytes]]:
    """200 valid events before, between and after each raw ``poison`` XADDed directly."""
    await bus.ensure_groups(redis)
    publisher = bus.RedisPublisher(redis)
    valid: list[CloudEvent] = []
    entry_ids: list[bytes] = []
    for raw in [*poisons, None]:
        batch = [CloudEvent.model_validate(factories.seizure(grams=g)) for g in range(1, 201)]
        assert all(await publisher.publish(batch))
        valid += batch
        if raw is not None:
            entry_ids.append(_bytes(await redis.xadd(streams.SEIZURES, {streams.EVENT_FIELD: raw})))
    return valid, entry_ids


async def _poison_test(redis: Redis, ledger_home: Ledger, poisons: list[bytes]) -> None:
    db = ledger_home.db
    valid, entry_ids = await _publish_around(redis, poisons)
    process = ledger_home.processes.start()

    async def settled() -> bool:
        info = await group_info(redis, streams.SEIZURES)
        return (
            recorded(db) == len(valid)
            and await redis.xlen(streams.DEAD_LETTERS) == len(poisons)
            and info["pending"] == 0
            and info["lag"] == 0
        )

    await wait_for(
        settled, "valid events recorded, poison dead-lettered", ledger_home.processes, 15
    )
    assert await process.terminate() == 0, process.output()

    assert recorded_keys(db) == {(ev.source, ev.id) for ev in valid}
    letters = await dead_letters(redis)
    assert [letter[b"payload"] for letter in letters] == poisons
    for letter, entry_id in zip(letters, entry_ids, strict=True):
        assert letter[b"origin"] == streams.SEIZURES.encode()
        assert letter[b"entry_id"] == entry_id
        assert letter[b"reason"].startswith(b"ledger: not a valid event: ")


async def test_poison_entries_are_dead_lettered_and_the_rest_recorded(
    redis: Redis, ledger_home: Ledger
) -> None:
    await _poison_test(redis, ledger_home, [NOT_JSON, NOT_AN_EVENT])
    reasons = [letter[b"reason"] for letter in await dead_letters(redis)]
    assert b"Invalid JSON" in reasons[0]
    assert b"source: Field required" in reasons[1]


async def test_a_payload_that_is_not_utf8_is_dead_lettered(
    redis: Redis, ledger_home: Ledger
) -> None:
    await _poison_test(redis, ledger_home, [b"\xff\xfe not utf-8"])
