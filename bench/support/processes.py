"""The services as their own processes, as deployed: ``liaison serve ledger``, and the
auditor's ``liaison ledger replay|verify`` timed with their peak memory.

``liaison serve api`` is started by :func:`bench.ingest.ingest_process`;
both share one data directory (``<workdir>/var``), hence one SQLite ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from bench.support.procs import sample
from services.core import streams

LIAISON = Path(sys.executable).parent / "liaison"


def service_env(redis_url: str, workdir: Path) -> dict[str, str]:
    """The environment of a ``liaison`` process of this run (no ``LIAISON_*`` inherited)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    return {**base, "LIAISON_REDIS_URL": redis_url, "LIAISON_DATA_DIR": str(workdir / "var")}


@asynccontextmanager
async def ledger_process(redis_url: str, workdir: Path) -> AsyncIterator[int]:
    """``liaison serve ledger``; yields its pid once it reads the seizures stream."""
    with (workdir / "ledger.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            str(LIAISON),
            "serve",
            "ledger",
            env=service_env(redis_url, workdir),
            stdout=log,
            stderr=log,
        )
    try:
        await _reading(redis_url, proc)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGCONT)  # in case it was frozen when something failed
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _reading(redis_url: str, proc: asyncio.subprocess.Process, timeout: float = 60) -> None:
    """Wait until the process has joined the ledger group of the seizures stream."""
    redis = Redis.from_url(redis_url)
    try:
        async with asyncio.timeout(timeout):
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"liaison serve ledger exited with {proc.returncode}")
                consumers = await redis.xinfo_consumers(streams.SEIZURES, streams.LEDGER_GROUP)
                if any(f":{proc.pid}:" in c["name"].decode() for c in consumers):
                    return
                await asyncio.sleep(0.05)
    finally:
        await redis.aclose()


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    """The process stopped (SIGSTOP) inside the block, running again after it."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@dataclass(frozen=True, slots=True)
class Command:
    """One finished command: wall seconds and its peak resident bytes."""

    seconds: float
    peak: int


def run_command(args: list[str], env: dict[str, str], every: float = 0.02) -> Command:
    """Run ``liaison <args>`` to completion, output to /dev/null; raises unless it exits 0.

    The peak is the child's ``VmHWM`` read every ``every`` seconds while it runs
    (``wait4``'s ``ru_maxrss`` would count the parent's pages at fork time).
    """
    with open(os.devnull, "wb") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen([str(LIAISON), *args], env=env, stdout=sink, stderr=sink)
        peak = 0
        while proc.poll() is None:
            with contextlib.suppress(OSError):  # it exited between poll and read
                peak = max(peak, sample(proc.pid).peak)
            time.sleep(every)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"liaison {' '.join(args)} exited with {proc.returncode}")
    return Command(seconds, peak)
