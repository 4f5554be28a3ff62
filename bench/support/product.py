"""The product path, as ``liaison up`` wires it: publisher → streams → broker → SQL ledger."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from schemas.events import CloudEvent
from services.core import streams
from services.core.bus import RedisPublisher, ensure_groups
from services.core.streaming import redis_broker
from services.core.wiring import consumer_name
from services.ledger import audit
from services.ledger.app import register_ledger
from services.ledger.scan import Query
from services.ledger.store import SqlLedger
from services.ledger.verify import VerifyReport

PUBLISH_BATCH = 1000  # the HTTP API's largest batch
POLL = 0.05
PRODUCT_KEYS = (*streams.CANONICAL_STREAMS, streams.DEAD_LETTERS)


async def streams_in_use(redis: Redis) -> bool:
    """Whether the server already holds Liaison Exchange data (never touch a live one)."""
    seen = [key async for key in redis.scan_iter(match=f"{streams.SEEN}:*")]
    return bool(seen) or bool(await redis.exists(*PRODUCT_KEYS))


async def reset_streams(redis: Redis) -> None:
    """Empty streams and publish-side idempotency keys, then the groups at ``0``."""
    seen = [key async for key in redis.scan_iter(match=f"{streams.SEEN}:*")]
    await redis.delete(*PRODUCT_KEYS, *seen)
    await ensure_groups(redis)


async def publish(redis: Redis, events: Sequence[CloudEvent]) -> float:
    """Seconds to publish every event through :class:`RedisPublisher`, 1000 per call."""
    publisher = RedisPublisher(redis)
    start = time.perf_counter()
    for i in range(0, len(events), PUBLISH_BATCH):
        flags = await publisher.publish(events[i : i + PUBLISH_BATCH])
        if not all(flags):
            raise RuntimeError("publish: events reported as duplicates; the streams were not empty")
    return time.perf_counter() - start


async def consume(redis_url: str, redis: Redis, ledger: SqlLedger, n: int) -> float:
    """Seconds from broker start until the ledger holds ``n`` entries.

    Polled every 50 ms on the ledger group's state (nothing pending, no lag:
    entries are acknowledged only after their transaction committed), then
    confirmed with :meth:`SqlLedger.count` — polling ``count()`` itself would
    load the database (``count(*)`` takes ~20 ms on PostgreSQL at 100k rows).
    """
    broker = redis_broker(redis_url)
    claimers = register_ledger(broker, redis, ledger, consumer_name("ledger"))
    timeout = 60 + n / 500  # fails loudly below 500 events/s rather than hanging
    start, count = time.perf_counter(), 0
    await broker.start()
    tasks = [asyncio.create_task(claimer.run()) for claimer in claimers]  # as bootstrap does
    try:
        while not (await drained(redis) and (count := await ledger.count()) >= n):
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"ledger: {await ledger.count()} of {n} after {timeout:.0f} s")
            await asyncio.sleep(POLL)
        elapsed = time.perf_counter() - start
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await broker.stop()
    if count != n or await redis.xlen(streams.DEAD_LETTERS):
        raise RuntimeError(f"ledger: {count} entries for {n} events, or dead letters")
    return elapsed


async def drained(redis: Redis) -> bool:
    """Whether the ledger group has read and acknowledged every entry of every stream."""
    for stream in streams.CANONICAL_STREAMS:
        groups: Any = await redis.xinfo_groups(stream)
        for group in groups:
            name = group["name"].decode() if isinstance(group["name"], bytes) else group["name"]
            if name == streams.LEDGER_GROUP and (group["pending"] or group["lag"] != 0):
                return False
    return True


async def replay(ledger: SqlLedger) -> tuple[float, int]:
    """Seconds for what ``liaison ledger replay`` runs (every entry as a JSON line, to a null
    sink), and the entries written."""
    with open(os.devnull, "w", encoding="utf-8") as sink:  # noqa: ASYNC230 - never blocks
        start = time.perf_counter()
        seen = await audit.replay(ledger, Query(), sink)
        return time.perf_counter() - start, seen


async def entries(ledger: SqlLedger) -> tuple[float, int]:
    """Seconds for a full :meth:`SqlLedger.entries` iteration (parsed: trail, stats), and the
    entries seen."""
    start, seen = time.perf_counter(), 0
    async for _entry in ledger.entries():
        seen += 1
    return time.perf_counter() - start, seen


async def verify(ledger: SqlLedger) -> tuple[float, VerifyReport]:
    """Seconds for :meth:`SqlLedger.verify`, and its report."""
    start = time.perf_counter()
    report = await ledger.verify()
    return time.perf_counter() - start, report
