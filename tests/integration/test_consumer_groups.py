"""The reader/claimer pair on a real server: ack after success, retry, dead-letter."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from faststream.redis import RedisBroker
from redis.asyncio import Redis

from services.core import bus, streams
from services.core.bus import Entry, Unavailable
from services.core.streaming import GroupOptions, subscribe_group
from tests.integration.conftest import eventually

Start = Callable[["Recorder"], Awaitable[None]]
FAST = GroupOptions(max_records=10, polling_ms=20, claim_idle_ms=200, retry_cap=3)


class Recorder:
    """A handler that fails on chosen payloads, a chosen number of times."""

    def __init__(self, failures: dict[bytes, int], error: type[Exception] = RuntimeError) -> None:
        self.failures = failures
        self.error = error
        self.seen: list[bytes] = []
        self.calls = 0

    async def __call__(self, entries: Sequence[Entry]) -> None:
        self.calls += 1
        for entry in entries:
            if self.failures.get(entry.payload, 0) > 0:
                self.failures[entry.payload] -= 1
                raise self.error(f"cannot handle {entry.payload!r} yet")
        self.seen.extend(e.payload for e in entries)


@pytest.fixture
async def broker(redis_url: str, redis: Redis) -> AsyncIterator[RedisBroker]:
    await bus.ensure_groups(redis)
    broker = RedisBroker(redis_url)
    yield broker
    await broker.stop()


@pytest.fixture
async def start(
    broker: RedisBroker, redis: Redis
) -> AsyncIterator[Callable[[Recorder], Awaitable[None]]]:
    """Subscribe a handler on the seizures stream and start the reader and its claimer."""
    tasks: list[asyncio.Task[None]] = []

    async def go(handler: Recorder) -> None:
        claimer = subscribe_group(broker, redis, stream=streams.SEIZURES, group="ledger",
                                  consumer="t", handler=handler, options=FAST)  # fmt: skip
        await broker.start()
        tasks.append(asyncio.create_task(claimer.run()))

    yield go
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _pending(redis: Redis) -> int:
    groups = await redis.xinfo_groups(streams.SEIZURES)
    return int(next(g for g in groups if g["name"] == b"ledger")["pending"])


async def test_groups_start_at_zero_and_see_what_was_published_before(
    start: Start, redis: Redis
) -> None:
    for i in range(25):
        await redis.xadd(streams.SEIZURES, {streams.EVENT_FIELD: f"e{i}"})
    handler = Recorder({})
    await start(handler)

    async def all_seen() -> bool:
        return len(handler.seen) == 25 and await _pending(redis) == 0

    await eventually(all_seen)
    assert handler.seen == [f"e{i}".encode() for i in range(25)]


async def test_a_failed_batch_is_retried_by_the_claimer(start: Start, redis: Redis) -> None:
    handler = Recorder({b"flaky": 2})
    await start(handler)
    for payload in ("a", "flaky", "b"):
        await redis.xadd(streams.SEIZURES, {streams.EVENT_FIELD: payload})

    async def settled() -> bool:
        return set(handler.seen) == {b"a", b"flaky", b"b"} and await _pending(redis) == 0

    await eventually(settled)
    assert await redis.xlen(streams.DEAD_LETTERS) == 0


async def test_a_poison_entry_is_dead_lettered_after_the_cap(start: Start, redis: Redis) -> None:
    handler = Recorder({b"poison": 1000})
    await start(handler)
    for payload in ("poison", "after"):
        await redis.xadd(streams.SEIZURES, {streams.EVENT_FIELD: payload})

    async def dead_lettered() -> bool:
        return await redis.xlen(streams.DEAD_LETTERS) == 1 and await _pending(redis) == 0

    await eventually(dead_lettered)
    [(_, fields)] = await redis.xrange(streams.DEAD_LETTERS)
    assert fields[b"payload"] == b"poison"
    assert fields[b"origin"] == streams.SEIZURES.encode()
    assert (
        b"after 3 deliveries; last: RuntimeError: cannot handle b'poison' yet" in fields[b"reason"]
    )
    assert b"after" in handler.seen


async def test_an_outage_longer_than_the_cap_dead_letters_nothing(
    start: Start, redis: Redis
) -> None:
    handler = Recorder({b"during-outage": 3 * FAST.retry_cap}, error=Unavailable)
    await start(handler)
    for payload in ("during-outage", "next"):
        await redis.xadd(streams.SEIZURES, {streams.EVENT_FIELD: payload})

    async def recorded() -> bool:
        return {b"during-outage", b"next"} <= set(handler.seen) and await _pending(redis) == 0

    await eventually(recorded, timeout=30)
    assert handler.failures[b"during-outage"] == 0  # it really failed 9 times, more than the cap
    assert await redis.xlen(streams.DEAD_LETTERS) == 0


async def test_bytes_that_are_not_utf8_are_dead_lettered_not_stuck(
    start: Start, redis: Redis
) -> None:
    handler = Recorder({b"\xff\xfe": 1000})
    await start(handler)
    for payload in (b"before", b"\xff\xfe", b"after"):
        await redis.xadd(streams.SEIZURES, {streams.EVENT_FIELD: payload})

    async def settled() -> bool:
        return await redis.xlen(streams.DEAD_LETTERS) == 1 and await _pending(redis) == 0

    await eventually(settled)
    assert {b"before", b"after"} <= set(handler.seen)


async def test_a_crashed_batch_is_reclaimed_in_batches(start: Start, redis: Redis) -> None:
    for i in range(30):
        await redis.xadd(streams.SEIZURES, {streams.EVENT_FIELD: f"e{i}"})
    # a consumer that read everything and died without acknowledging
    await redis.xreadgroup("ledger", "dead-consumer", {streams.SEIZURES: ">"}, count=100)
    handler = Recorder({})
    await start(handler)

    async def recovered() -> bool:
        return len(set(handler.seen)) == 30 and await _pending(redis) == 0

    await eventually(recovered)
    assert handler.calls <= 3 + 3  # claimed 10 at a time (max_records), not one by one
