"""Pipelined readers and their group commit on a real server: acks only after the commit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace

import pytest
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from services.core import bus, streams
from services.core.bus import Entry
from services.core.group_commit import GroupCommit, PartlyCommitted
from services.core.streaming import GroupOptions, subscribe_pipelined
from tests.integration.conftest import eventually

FAST = GroupOptions(max_records=10, polling_ms=20, claim_idle_ms=200, retry_cap=3, queue_batches=2)
STREAMS = (streams.SEIZURES, streams.RECEIPTS)
Start = Callable[..., Awaitable[None]]


class Writer:
    """A commit that records what it got, checks nothing was acknowledged yet, and can fail."""

    def __init__(self, redis: Redis, failures: int = 0) -> None:
        self.redis, self.failures = redis, failures
        self.committed: list[bytes] = []
        self.calls: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def prepare(self, entries: Sequence[Entry]) -> list[Entry]:
        return list(entries)

    async def commit(self, batches: Sequence[list[Entry]]) -> None:
        await self.gate.wait()
        entries = [entry for batch in batches for entry in batch]
        for entry in entries:  # ack after commit: every entry handed over is still pending
            pending = await self.redis.xpending_range(
                entry.stream, "ledger", min=entry.entry_id, max=entry.entry_id, count=1
            )
            assert pending, f"{entry.entry_id} was acknowledged before its commit"
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database down")
        self.calls.append(len(entries))
        self.committed += [e.payload for e in entries]


@pytest.fixture
async def start(redis_url: str, redis: Redis) -> AsyncIterator[Start]:
    await bus.ensure_groups(redis)
    broker = RedisBroker(redis_url)
    tasks: list[asyncio.Task[None]] = []

    async def go(writer: Writer, options: GroupOptions = FAST) -> None:
        loops = subscribe_pipelined(
            broker, redis, streams=STREAMS, group="ledger", consumer="t",
            prepare=writer.prepare, commit=writer.commit, options=options,
        )  # fmt: skip
        await broker.start()
        tasks.extend(asyncio.create_task(loop.run()) for loop in loops)

    yield go
    for task in tasks:  # the group commit first, as the service stops: readers are released
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await broker.stop()


async def _pending(redis: Redis) -> int:
    total = 0
    for stream in STREAMS:
        groups = await redis.xinfo_groups(stream)
        info = next(g for g in groups if g["name"] == b"ledger")
        total += int(info["pending"]) + int(info["lag"] or 0)
    return total


async def _publish(redis: Redis, n: int) -> set[bytes]:
    payloads = {f"e{i}".encode() for i in range(n)}
    for i, payload in enumerate(sorted(payloads)):
        await redis.xadd(STREAMS[i % 2], {streams.EVENT_FIELD: payload})
    return payloads


async def test_batches_of_several_streams_share_commits_acknowledged_after(
    start: Start, redis: Redis
) -> None:
    writer = Writer(redis)
    writer.gate.clear()  # hold the first commit while the readers fill the queue
    await start(writer)
    payloads = await _publish(redis, 60)
    writer.gate.set()

    async def settled() -> bool:
        return set(writer.committed) == payloads and await _pending(redis) == 0

    await eventually(settled)
    assert sorted(writer.committed) == sorted(payloads), "each entry committed once"
    assert max(writer.calls) > FAST.max_records, "queued batches were committed together"


async def test_a_failed_commit_leaves_its_entries_to_the_claimer(
    start: Start, redis: Redis
) -> None:
    writer = Writer(redis, failures=1)
    await start(writer)
    payloads = await _publish(redis, 6)

    async def settled() -> bool:
        return set(writer.committed) == payloads and await _pending(redis) == 0

    await eventually(settled)
    assert await redis.xlen(streams.DEAD_LETTERS) == 0


class KeepingWriter(Writer):
    """A writer whose first commit leaves its first entry pending (:class:`PartlyCommitted`)."""

    kept: Entry | None = None

    async def commit(self, batches: Sequence[list[Entry]]) -> None:
        await super().commit(batches)
        if self.kept is None:
            self.kept = batches[0][0]
            raise PartlyCommitted([self.kept.entry_id], "held back")


async def _pending_ids(redis: Redis) -> set[str]:
    ids = set()
    for stream in STREAMS:
        rows = await redis.xpending_range(stream, "ledger", min="-", max="+", count=100)
        ids |= {row["message_id"].decode() for row in rows}
    return ids


async def test_a_partly_committed_batch_leaves_only_what_it_names_to_the_claimer(
    start: Start, redis: Redis
) -> None:
    """The rest is acknowledged at once, the kept entry alone stays pending, and the claimer
    retries it. Its idle time is long (5 s) so that on a loaded machine nothing else is
    claimed before the first commit: that is the claimer's right, and no fault of the rule."""
    writer = KeepingWriter(redis)
    await start(writer, replace(FAST, claim_idle_ms=5000))
    payloads = await _publish(redis, 6)

    async def the_rest_acknowledged() -> bool:  # every entry committed once, one kept back
        return (
            writer.kept is not None
            and sorted(writer.committed) == sorted(payloads)
            and await _pending_ids(redis) == {writer.kept.entry_id}
        )

    await eventually(the_rest_acknowledged)
    assert writer.kept is not None
    kept = writer.kept.payload

    async def retried() -> bool:
        return writer.committed.count(kept) == 2 and await _pending(redis) == 0

    await eventually(retried, timeout=30)
    assert sorted(writer.committed) == sorted([*payloads, kept]), "only the kept one again"


async def test_a_stopped_group_commit_releases_waiting_readers_and_refuses_more(
    redis: Redis,
) -> None:
    async def commit(batches: Sequence[int]) -> None:
        await asyncio.Event().wait()  # a commit that never ends

    group = GroupCommit(redis, "ledger", commit, queue_batches=1)
    writer = asyncio.create_task(group.run())
    entries = [Entry(streams.SEIZURES, "0-1", b"")]
    await group.put(streams.SEIZURES, entries, 1)  # taken into the endless commit
    await group.put(streams.SEIZURES, entries, 2)  # queued
    waiting = asyncio.create_task(group.put(streams.SEIZURES, entries, 3))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    await asyncio.wait_for(waiting, 5)  # released, so that the broker can stop its readers
    with pytest.raises(RuntimeError, match="stopped"):
        await group.put(streams.SEIZURES, entries, 4)


async def test_a_full_queue_holds_the_readers_back(redis: Redis) -> None:
    committed: list[int] = []

    async def commit(batches: Sequence[int]) -> None:
        committed.extend(batches)

    group = GroupCommit(redis, "ledger", commit, queue_batches=2)
    entries = [Entry(streams.SEIZURES, "0-1", b"")]
    await group.put(streams.SEIZURES, entries, 1)
    await group.put(streams.SEIZURES, entries, 2)
    third = asyncio.create_task(group.put(streams.SEIZURES, entries, 3))
    for _ in range(5):
        await asyncio.sleep(0)  # let it run as far as it can
    assert not third.done(), "a third batch was queued beyond the bound"
    writer = asyncio.create_task(group.run())
    await asyncio.wait_for(third, 5)

    async def all_committed() -> bool:
        return committed == [1, 2, 3]

    await eventually(all_committed)
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
