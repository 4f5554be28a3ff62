"""Raw limits for the fan-out: one stream hop's latency, pipelined HSET throughput."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from redis.asyncio import Redis

KEY = "bench:raw:hop"
GROUP = "bench"


async def hop_latencies(url: str, n: int = 2000) -> list[float]:
    """Seconds from just before an ``XADD`` until a reader blocked in ``XREADGROUP`` has it.

    One entry at a time, the reader on its own connection: the floor of one
    stream hop (publish → notifier, or inbox feed → a watcher) on this machine.
    """
    writer, reader = Redis.from_url(url), Redis.from_url(url)
    try:
        await writer.delete(KEY)
        await writer.xgroup_create(KEY, GROUP, id="0", mkstream=True)
        got: asyncio.Queue[float] = asyncio.Queue()
        done = False

        async def read() -> None:
            # Stops by itself: redis-py may swallow the cancellation of a blocked read.
            while not done:
                reply: Any = await reader.xreadgroup(GROUP, "r", {KEY: ">"}, count=10, block=100)
                if reply:
                    got.put_nowait(time.perf_counter())

        task = asyncio.create_task(read())
        latencies = []
        for i in range(n):
            start = time.perf_counter()
            await writer.xadd(KEY, {"i": i})
            latencies.append(await asyncio.wait_for(got.get(), 5) - start)
        done = True
        await asyncio.wait_for(task, 5)
        await writer.delete(KEY)
        return latencies
    finally:
        await writer.aclose()
        await reader.aclose()


async def hset_pipelined(redis: Redis, n: int = 20_000, batch: int = 500) -> float:
    """HSETs per second of delivery-sized JSON into 20 hashes, ``batch`` per round trip."""
    value = json.dumps({"event": "x" * 1400, "view": "full"})
    keys = [f"bench:raw:inbox:{i}" for i in range(20)]
    await redis.delete(*keys)
    start = time.perf_counter()
    for offset in range(0, n, batch):
        pipe = redis.pipeline(transaction=False)
        for i in range(offset, min(offset + batch, n)):
            pipe.hset(keys[i % 20], str(i), value)
        await pipe.execute()
    elapsed = time.perf_counter() - start
    await redis.delete(*keys)
    return n / elapsed


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]
