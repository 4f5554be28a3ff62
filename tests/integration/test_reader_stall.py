"""A reader whose process stalls (SIGSTOP, a paused VM) keeps what the server delivered meanwhile.

redis-py 8 gives connections a 5 s read timeout; a reader always has an
``XREADGROUP … BLOCK`` in flight, so a longer stall used to end that read in a
``TimeoutError`` on resuming: its entries, delivered by the server during the
stall, stayed pending until the claimer took them over (30 s by default) and
FastStream paused reading for 5 s. This test stalls the event loop itself
(the only way to stop a reader in its own process), 5.5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import redis as sync_redis
from redis.asyncio import Redis

from services.core import bus, streams
from services.core.bus import Entry
from services.core.streaming import GroupOptions, redis_broker, subscribe_group
from tests.integration.conftest import eventually

STALL = 5.5  # seconds: longer than redis-py 8's default read timeout (5 s)
NO_CLAIMS = GroupOptions(max_records=50, polling_ms=10_000, claim_idle_ms=600_000)
"""The read blocks 10 s at the server (the services: 100 ms), so that it surely waits there when
the entries arrive and takes them; no claim within the test."""


async def test_entries_delivered_during_a_stall_are_read_when_it_ends(
    redis_url: str, redis: Redis
) -> None:
    await bus.ensure_groups(redis)
    seen: list[bytes] = []

    async def handler(entries: Sequence[Entry]) -> None:
        seen.extend(e.payload for e in entries)

    broker = redis_broker(redis_url)
    claimer = subscribe_group(broker, redis, stream=streams.SEIZURES, group="ledger",
                              consumer="t", handler=handler, options=NO_CLAIMS)  # fmt: skip
    await broker.start()
    claiming = asyncio.create_task(claimer.run())
    try:
        await eventually(lambda: _blocked_in_a_read(redis))  # XREADGROUP … BLOCK 10000
        with sync_redis.Redis.from_url(redis_url) as other:
            for i in range(5):  # delivered to the blocked read while this process is stalled
                other.xadd(streams.SEIZURES, {streams.EVENT_FIELD: f"during{i}"})
        time.sleep(STALL)  # noqa: ASYNC251 - the stall under test: nothing may run meanwhile
        await redis.xadd(streams.SEIZURES, {streams.EVENT_FIELD: "after"})

        async def read_after() -> bool:
            return b"after" in seen

        await eventually(read_after, timeout=30)
        assert seen == [*(f"during{i}".encode() for i in range(5)), b"after"]

        async def all_acknowledged() -> bool:
            groups = await redis.xinfo_groups(streams.SEIZURES)
            return next(g for g in groups if g["name"] == b"ledger")["pending"] == 0

        await eventually(all_acknowledged)
    finally:
        claiming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await claiming
        await broker.stop()


async def _blocked_in_a_read(redis: Redis) -> bool:
    """A client of the server waits in ``XREADGROUP … BLOCK`` (the reader, nobody else reads)."""
    return any(c["cmd"] == "xreadgroup" and "b" in c["flags"] for c in await redis.client_list())
