"""Keeps the streams short: what every consumer group has acknowledged is trimmed away.

The streams carry events until the ledger and the notifier have them; the
ledger is the record. An entry is trimmed only once every group on its
stream — ours or anyone's — has read it and none holds it pending, and once
it is older than the retention: the server's memory is bounded by the traffic
of one retention period, not by the events ever processed. (``MAXLEN`` on publish would
trim entries nobody has read yet.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from redis.asyncio import Redis

StreamId = tuple[int, int]
MAX_ROUNDS = 100
"""XTRIM calls per stream and pass: up to ~1,000,000 entries a second at the default pause."""


def parse_id(value: bytes | str) -> StreamId:
    """``b"1700000000000-3"`` → ``(1700000000000, 3)``."""
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def still_needed_from(redis: Redis, stream: str) -> StreamId | None:
    """The lowest id some group may still need (pending, or not yet read); ``None``: no group.

    Ids only grow: a group's next reads and claims are at or above what this returns,
    so trimming below it stays safe however long ago it was computed.

    ``XINFO GROUPS`` and ``XPENDING`` are two reads, not one: a group may acknowledge
    everything it held in between, and ``XPENDING`` then has no lowest id. Its answer
    is the one that counts; the last-delivered id read first is still a lower bound
    (a group reads only above it), so the floor stays safe.
    """
    groups = await redis.xinfo_groups(stream)
    if not groups:
        return None
    floor: StreamId | None = None
    for group in groups:
        point = parse_id(group["last-delivered-id"])
        if group["pending"]:  # zero stays zero below last-delivered: new reads are above it
            lowest = (await redis.xpending(stream, group["name"]))["min"]
            if lowest is not None:  # None: acknowledged since XINFO GROUPS
                point = min(point, parse_id(lowest))
        floor = point if floor is None else min(floor, point)
    return floor


async def trim_acknowledged(
    redis: Redis, streams: Iterable[str], retention_ms: int, now_ms: int | None = None
) -> int:
    """Trim each stream below what its groups still need and the retention; entries removed."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    removed = 0
    for stream in streams:
        floor = await still_needed_from(redis, stream)
        if floor is None:
            continue
        floor = min(floor, (now_ms - retention_ms, 0))
        if floor > (0, 0):
            removed += await _trim_below(redis, stream, f"{floor[0]}-{floor[1]}")
    return removed


async def _trim_below(redis: Redis, stream: str, minid: str) -> int:
    # Approximate: whole radix-tree nodes go at once, which is what frees memory. Each call
    # removes at most ~10,000 entries (the server's default LIMIT for ``~``), which keeps it
    # short; repeated until done, so trimming keeps up with any publishing rate.
    removed = 0
    for _ in range(MAX_ROUNDS):
        step = int(await redis.xtrim(stream, minid=minid, approximate=True))
        removed += step
        if step == 0:
            break
    return removed
