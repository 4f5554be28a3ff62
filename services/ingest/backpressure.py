"""Back-pressure: ingest refuses new events (503, ``Retry-After``) while the pipeline is behind,
rather than filling the server until it runs out of memory.

Two readings of the server, at most every :data:`EVERY` seconds per process (shared by the
requests meanwhile): the **backlog** — for each canonical stream, the entries its slowest
consumer group (the ledger, the notifier) has not handled yet (lag + pending), summed — and
the server's ``used_memory`` as a share of its ``maxmemory`` (when one is set), and whether it
can write its append-only file (a full volume: it refuses every write until it can). Past a
high-water mark (``LIAISON_BACKLOG_HIGH``, ``LIAISON_MEMORY_HIGH``) the intake closes; it
opens again by itself once both are at or below their low-water marks (``…_LOW``): the gap
keeps it from flapping at the mark. Between readings a process counts the events it admitted
on top of the last reading, so it overshoots the mark by at most the requests in flight.
Every process reads the same server, so every API process closes and opens at about the same
time (several processes may each overshoot by what they admit within one reading). What was accepted stays in the streams and drains
when the consumers catch up; publishers retry (publishing is idempotent on (source, id)).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace

from redis.asyncio import Redis

from services.core import streams
from services.core.problems import Problem

log = logging.getLogger(__name__)

EVERY = 0.5
"""Seconds a reading of the server is used for before the next is taken."""
RETRY_AFTER = 5
"""Seconds a refused publisher is told to wait (the backlog drains at thousands per second)."""


@dataclass(frozen=True, slots=True)
class WaterMarks:
    """Where the intake closes (high) and opens again (low)."""

    backlog_high: int
    backlog_low: int
    memory_high: float
    memory_low: float


@dataclass(frozen=True, slots=True)
class Reading:
    """What the server said: events behind, bytes used, ``maxmemory`` (0: none set)."""

    backlog: int
    used: int
    maxmemory: int
    persisting: bool = True
    """False while the server cannot write its append-only file (``aof_last_write_status``)."""


def why_closed(reading: Reading, marks: WaterMarks, closed: bool) -> str | None:
    """Why the intake is closed after ``reading`` (None: open). Closed now, it stays closed
    until every figure is back at or below its low-water mark; open, it closes at a high one."""
    if not reading.persisting:  # every write is refused until it can: no mark to wait for
        return "the server cannot write its append-only file (is its volume full?)"
    share = reading.used / reading.maxmemory if reading.maxmemory else 0.0
    backlog_mark = marks.backlog_low if closed else marks.backlog_high - 1
    memory_mark = marks.memory_low if closed else marks.memory_high
    if reading.backlog > backlog_mark:
        return f"{reading.backlog} events not yet handled by the ledger or the notifier"
    if reading.maxmemory and (share > memory_mark if closed else share >= memory_mark):
        return f"the server uses {share:.0%} of its maxmemory"
    return None


async def read_server(redis: Redis) -> Reading:
    """The backlog of the canonical streams and the server's memory, in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams.CANONICAL_STREAMS:
            pipe.xinfo_groups(stream)
            pipe.xlen(stream)
        pipe.info("memory")
        pipe.info("persistence")
        replies = await pipe.execute()
    backlog = 0
    for groups, length in zip(replies[0:-2:2], replies[1:-2:2], strict=True):
        behind = [
            # lag is unknown (None) after some deletions: then the whole stream may be behind
            (length if group.get("lag") is None else int(group["lag"])) + int(group["pending"])
            for group in groups
        ]
        backlog += max(behind, default=0)
    memory, persistence = replies[-2], replies[-1]
    persisting = persistence.get("aof_last_write_status", "ok") == "ok"
    return Reading(
        backlog, int(memory["used_memory"]), int(memory.get("maxmemory") or 0), persisting
    )


class BackPressure:
    """Whether ingest takes new events now; one per process, on the API's client."""

    def __init__(self, redis: Redis, marks: WaterMarks, every: float = EVERY) -> None:
        self._redis, self._marks, self._every = redis, marks, every
        self._reason: str | None = None
        self._read_at = -float("inf")
        self._reading = Reading(0, 0, 0)
        self._since = 0
        """Events admitted by this process since the last reading."""
        self._lock = asyncio.Lock()

    async def reason(self) -> str | None:
        """Why the intake is closed (None: open), from a reading at most ``every`` s old."""
        async with self._lock:  # one reading at a time; the requests meanwhile share it
            if time.monotonic() - self._read_at >= self._every:
                self._reading, self._since = await read_server(self._redis), 0
                self._read_at = time.monotonic()
            reading = replace(self._reading, backlog=self._reading.backlog + self._since)
            reason = why_closed(reading, self._marks, self._reason is not None)
            if (reason is None) != (self._reason is None):
                log.warning("intake %s", f"closed: {reason}" if reason else "open again")
            self._reason = reason
        return self._reason

    async def admit(self, events: int) -> None:
        """Count ``events`` as admitted, or raise the 503 to answer while the intake is closed."""
        reason = await self.reason()
        if reason is None:
            self._since += events
        else:
            raise Problem(
                503,
                "Service overloaded",
                f"not accepting events for now: {reason}; retry after the time given "
                "(nothing of this request was accepted)",
                headers={"Retry-After": str(RETRY_AFTER)},
            )

    async def checks(self) -> dict[str, bool]:
        """Readiness: ``intake`` fails while the intake is closed (the 503s say why)."""
        return {"intake": await self.reason() is None}
