"""The pipeline as deployed, end to end: HTTP batch ingest → stream → ledger persisted.

One embedded Valkey, ``liaison serve api`` and ``liaison serve ledger`` as
their own processes on one SQLite ledger. Senders in this process POST
batches of 1000 ``seizure.reported`` events; the clock stops when the ledger
group has acknowledged every entry (acks follow commits). Each process's
resident memory and CPU time are read from ``/proc`` before and after.

Optionally (``split``) the two stages are then timed apart on N more events:
the ledger frozen while ingest takes them (HTTP ingest → stream alone), then
let go (stream → ledger alone). Optionally (``reads``) the persisted ledger is
replayed and verified, in this process and as the auditor's commands.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from bench.ingest import ingest_process, post_batches
from bench.support import processes, product, raw_sql
from bench.support.payloads import UNITS, bodies
from bench.support.procs import Sample, child_matching, sample
from services.core import streams
from services.core.bus import ensure_groups
from services.core.redis_server import EmbeddedRedis
from services.ledger.engine import create_engine
from services.ledger.store import SqlLedger

BATCH = 1000
SENDERS = 4
POLL = 0.02


@dataclass(slots=True)
class Phase:
    """One timed phase: seconds, and CPU seconds each process spent in it."""

    events: int
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds


@dataclass(slots=True)
class Reads:
    """Replay and verify of the persisted ledger: seconds, in-process and as commands."""

    replay: float
    verify: float
    raw_lines: float
    raw_rehash: float
    commands: dict[str, processes.Command] = field(default_factory=dict)


@dataclass(slots=True)
class Point:
    """Everything measured at one size of the scale curve."""

    events: int
    e2e: Phase | None = None
    ingest_accepted: float = 0.0
    """Seconds until the last 202 in the end-to-end phase (ingest running beside the ledger)."""
    ingest_alone: Phase | None = None
    ledger_alone: Phase | None = None
    memory: dict[str, tuple[Sample, Sample]] = field(default_factory=dict)
    """Process → (reading when ready, reading after the end-to-end phase)."""
    server: dict[str, int] = field(default_factory=dict)
    """Valkey's own accounting after the end-to-end phase: bytes."""
    reads: Reads | None = None


async def run_point(events: int, *, split: bool = False, reads: bool = False) -> Point:
    """Measure the pipeline on ``events`` events (a multiple of 1000, or fewer than 1000)."""
    point = Point(events)
    with (
        tempfile.TemporaryDirectory(prefix="liaison-bench-e2e-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as server,
    ):
        work, redis = Path(tmp), Redis.from_url(server.url)
        try:
            await ensure_groups(redis)
            info = await redis.info("server")
            async with (
                ingest_process(server.url, work, UNITS) as api,
                processes.ledger_process(server.url, work) as ledger_pid,
            ):
                pids = {
                    "ingest": child_matching("serve api"),
                    "ledger": ledger_pid,
                    "valkey": int(info["process_id"]),
                    "bench": os.getpid(),
                }
                await _measure(point, redis, api, pids, split=split)
            url = f"sqlite+aiosqlite:///{work / 'var' / 'ledger.sqlite3'}"
            total = events * (2 if split else 1)
            await _check(redis, url, total)
            if reads:
                point.reads = await _reads(url, total, processes.service_env(server.url, work))
        finally:
            await redis.aclose()
    return point


async def _measure(
    point: Point, redis: Redis, api: tuple[str, str], pids: dict[str, int], *, split: bool
) -> None:
    n, size = point.events, min(point.events, BATCH)
    batches = n // size
    before = {name: sample(pid) for name, pid in pids.items()}

    def post(first: int) -> Callable[[], Awaitable[float]]:
        return lambda: post_batches(*api, bodies(range(first, first + batches), size), SENDERS)

    start = time.perf_counter()
    point.ingest_accepted = await post(0)()
    await _until_drained(redis, n)
    point.e2e = Phase(n, time.perf_counter() - start)
    after = {name: sample(pid) for name, pid in pids.items()}
    point.e2e.cpu = {name: after[name].cpu - before[name].cpu for name in pids}
    point.memory = {name: (before[name], after[name]) for name in pids}
    point.server = await _server_memory(redis)
    if split:
        with processes.frozen(pids["ledger"]):
            point.ingest_alone = await _phase(n, pids, post(batches))
        point.ledger_alone = await _phase(n, pids, lambda: _until_drained(redis, n))


async def _phase(n: int, pids: dict[str, int], work: Callable[[], Awaitable[object]]) -> Phase:
    cpu = {name: sample(pid).cpu for name, pid in pids.items()}
    start = time.perf_counter()
    await work()
    phase = Phase(n, time.perf_counter() - start)
    phase.cpu = {name: sample(pid).cpu - cpu[name] for name, pid in pids.items()}
    return phase


async def _until_drained(redis: Redis, n: int) -> None:
    """Poll until the ledger group has acknowledged everything (fails below 500 events/s)."""
    timeout = 60 + n / 500
    async with asyncio.timeout(timeout):
        while not await product.drained(redis):
            await asyncio.sleep(POLL)


async def _server_memory(redis: Redis) -> dict[str, int]:
    info = await redis.info("memory")
    persistence = await redis.info("persistence")
    return {
        "used_memory": int(info["used_memory"]),
        "aof_rewrites": int(persistence.get("aof_rewrites", 0)),
        "aof_bytes": int(persistence.get("aof_current_size", 0)),
        "stream": int(await redis.memory_usage(streams.SEIZURES) or 0),
        "seen": sum(
            [
                int(await redis.memory_usage(key) or 0)
                async for key in redis.scan_iter(match=f"{streams.SEEN}:*")
            ]
        ),
    }


async def _check(redis: Redis, url: str, total: int) -> None:
    """Every accepted event went through the stream (trimmed since) into the ledger;
    nothing dead-lettered."""
    ledger = SqlLedger(create_engine(url))
    try:
        count = await ledger.count()
    finally:
        await ledger.close()
    info = await redis.xinfo_stream(streams.SEIZURES)
    stream, dead = int(info["entries-added"]), await redis.xlen(streams.DEAD_LETTERS)
    if not count == stream == total or dead:
        raise RuntimeError(
            f"{total} accepted: {stream} in the stream, {count} in the ledger, {dead} dead letters"
        )


async def _reads(url: str, n: int, env: dict[str, str]) -> Reads:
    """Replay and verify in this process (rates), the raw scans, then the commands (memory)."""
    ledger = SqlLedger(create_engine(url))
    try:
        replay_s, seen = await product.replay(ledger)
        verify_s, verdict = await product.verify(ledger)
    finally:
        await ledger.close()
    if seen != n or not verdict.ok or verdict.count != n:
        raise RuntimeError(f"replay wrote {seen} of {n}; verify: {verdict.to_dict()}")
    raw = await raw_sql.scans(url, parse=False)
    result = Reads(replay_s, verify_s, raw.lines, raw.rehash)
    for command in ("replay", "verify"):
        result.commands[command] = await asyncio.to_thread(
            processes.run_command, ["ledger", command], env
        )
    return result
