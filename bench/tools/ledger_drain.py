"""Why ``liaison serve ledger`` drains a backlog slower than the same code in-process.

``python -m bench.tools.ledger_drain [--events N] [--rounds R] [--variants ...]``
fills the canonical streams of one embedded Valkey with N events
(``RedisPublisher``), then lets one variant drain them into a fresh SQLite
ledger, and times it; variants alternate within each round, so a busy
machine slows them alike (compare ratios):

* ``inproc`` — ``bench.support.product.consume``: a broker with ``register_ledger``
  in this process, no signing key;
* ``runtime`` — ``services.bootstrap.Runtime`` with only the ledger, in this
  process (the settings, signing key, checkpoints, trimmer of the service);
* ``process`` — ``liaison serve ledger`` as its own process, started on the
  backlog; timed from the first acknowledgement seen, on what remained;
* ``frozen`` — the process started on empty streams, stopped (SIGSTOP) while
  the backlog is published, let go (SIGCONT);
* ``warm`` — as ``frozen``, after the process persisted N other events as they
  were published: what ``bench.e2e`` times as "ledger alone";
* ``paused`` — as ``process``, stopped for the pause a third of the way
  through (the pause is not counted).

Processes are kept stopped ``--pause`` seconds (default 8, as long as
``bench.e2e`` keeps the ledger stopped at 100k events) or while publishing.

Extra ``LIAISON_*`` settings for the process variants: ``--env KEY=VALUE``.
A process variant named ``frozen@DIR`` runs the ``services`` package found
in DIR (``PYTHONPATH``): an older checkout, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.support import processes, product
from bench.support.payloads import Payloads, build, out_of_gc
from services.bootstrap import Runtime
from services.core import streams
from services.core.redis_server import EmbeddedRedis
from services.core.settings import Settings
from services.ledger.engine import create_engine
from services.ledger.store import SqlLedger

POLL = 0.02
VARIANTS = ("inproc", "runtime", "process", "frozen", "warm", "paused")


async def acknowledged(redis: Redis) -> int:
    """Entries the ledger group has read and acknowledged, over every canonical stream."""
    total = 0
    for stream in streams.CANONICAL_STREAMS:
        groups: Any = await redis.xinfo_groups(stream)
        for group in groups:
            if group["name"] in (streams.LEDGER_GROUP, streams.LEDGER_GROUP.encode()):
                total += int(group["entries-read"] or 0) - int(group["pending"])
    return total


def _cpu_times() -> list[str]:
    with open("/proc/stat") as stat:
        return stat.readline().split()[1:6]


async def _until_drained(redis: Redis, n: int) -> float:
    """Seconds (perf_counter) when the group has acknowledged all ``n``."""
    trace, last, start = bool(os.environ.get("DRAIN_TRACE")), 0.0, time.perf_counter()
    async with asyncio.timeout(120 + n / 500):
        while (done := await acknowledged(redis)) < n:
            if trace and time.perf_counter() - last >= 1:
                last = time.perf_counter()
                consumers: Any = await redis.xinfo_consumers(streams.SEIZURES, streams.LEDGER_GROUP)
                mine = {
                    c["name"].decode().split(":")[-1]: (c["pending"], c["idle"]) for c in consumers
                }
                aof: Any = await redis.info("persistence")
                cpu = _cpu_times()
                print(
                    f"  {last - start:5.1f}s acked {done:7d} consumers {mine} "
                    f"rewrite {aof['aof_rewrite_in_progress']} delayed {aof['aof_delayed_fsync']} "
                    f"size {aof['aof_current_size'] >> 20}M cpu(u,n,s,idle,iowait) {cpu}",
                    flush=True,
                )
            await asyncio.sleep(POLL)
    return time.perf_counter()


class Bench:
    """One server, one set of events, a fresh ledger per measurement."""

    def __init__(self, url: str, redis: Redis, payloads: Payloads, work: Path, env: dict[str, str]):
        self.url, self.redis, self.p, self.work, self.env = url, redis, payloads, work, env
        self.runs = 0
        self.other: Payloads | None = None  # the warm variant's first N
        self.code = ""  # PYTHONPATH of the process variants
        self.pause = 8.0  # seconds a process is kept stopped (bench.e2e: ~7.5 s at 100k)

    async def fill(self) -> None:
        """Empty streams, groups at 0, then the N events published."""
        await product.reset_streams(self.redis)
        await product.publish(self.redis, self.p.events)

    def fresh_dir(self) -> Path:
        self.runs += 1
        path = self.work / f"run{self.runs}"
        path.mkdir()
        return path

    async def inproc(self) -> float:
        await self.fill()
        ledger = SqlLedger(create_engine(f"sqlite+aiosqlite:///{self.fresh_dir()}/l.sqlite3"))
        try:
            await ledger.create_schema()
            return len(self.p.events) / await product.consume(
                self.url, self.redis, ledger, len(self.p.events)
            )
        finally:
            await ledger.close()

    async def runtime(self) -> float:
        await self.fill()
        settings = Settings(redis_url=self.url, data_dir=self.fresh_dir() / "var")
        start = time.perf_counter()
        async with Runtime(settings, services=["ledger"]):
            end = await _until_drained(self.redis, len(self.p.events))
        return len(self.p.events) / (end - start)

    def _env(self, workdir: Path) -> dict[str, str]:
        env = {**processes.service_env(self.url, workdir), **self.env}
        if self.code:
            env["PYTHONPATH"] = self.code
        return env

    async def process(self) -> float:
        await self.fill()
        n = len(self.p.events)
        async with _serve_ledger(self._env(self.fresh_dir())):
            async with asyncio.timeout(60):
                while (first := await acknowledged(self.redis)) == 0:
                    await asyncio.sleep(0.002)
            start = time.perf_counter()
            end = await _until_drained(self.redis, n)
        return (n - first) / (end - start)

    async def frozen(self) -> float:
        await product.reset_streams(self.redis)
        n = len(self.p.events)
        async with _serve_ledger(self._env(self.fresh_dir())) as proc:
            await _joined(self.redis, proc.pid)
            await self._frozen_while(proc.pid, self.p)
            start = time.perf_counter()
            spy = await _profile(proc.pid, f"frozen{self.runs}")
            end = await _until_drained(self.redis, n)
            if spy is not None:
                await spy.wait()
        return n / (end - start)

    async def _frozen_while(self, pid: int, payloads: Payloads) -> None:
        """The process stopped while ``payloads`` are published, at least ``self.pause`` s."""
        os.kill(pid, signal.SIGSTOP)
        try:
            start = time.perf_counter()
            await product.publish(self.redis, payloads.events)
            await asyncio.sleep(self.pause - (time.perf_counter() - start))
        finally:
            os.kill(pid, signal.SIGCONT)

    async def paused(self) -> float:
        """Started on the backlog, stopped ``self.pause`` s a third of the way; the pause is
        not counted."""
        await self.fill()
        n = len(self.p.events)
        async with _serve_ledger(self._env(self.fresh_dir())) as proc:
            async with asyncio.timeout(60):
                while (first := await acknowledged(self.redis)) == 0:
                    await asyncio.sleep(0.002)
            start = time.perf_counter()
            while await acknowledged(self.redis) < n // 3:
                await asyncio.sleep(0.002)
            os.kill(proc.pid, signal.SIGSTOP)
            await asyncio.sleep(self.pause)
            os.kill(proc.pid, signal.SIGCONT)
            end = await _until_drained(self.redis, n)
        return (n - first) / (end - start - self.pause)

    async def warm(self) -> float:
        await product.reset_streams(self.redis)
        n = len(self.p.events)
        if self.other is None:
            self.other = build(n)
        async with _serve_ledger(self._env(self.fresh_dir())) as proc:
            await _joined(self.redis, proc.pid)
            await product.publish(self.redis, self.other.events)
            await _until_drained(self.redis, n)
            await self._frozen_while(proc.pid, self.p)
            start = time.perf_counter()
            end = await _until_drained(self.redis, 2 * n)
        return n / (end - start)


async def _profile(pid: int, name: str) -> asyncio.subprocess.Process | None:
    """``py-spy record`` of ``pid`` for ``$DRAIN_PROFILE`` seconds, if set (raw, with idle)."""
    seconds = os.environ.get("DRAIN_PROFILE")
    if not seconds:
        return None
    spy = Path(processes.LIAISON).parent / "py-spy"
    return await asyncio.create_subprocess_exec(
        str(spy),
        "record",
        "--idle",
        "--threads",
        "-r",
        "200",
        "-d",
        seconds,
        "-p",
        str(pid),
        "-f",
        "raw",
        "-o",
        f"/tmp/drain-{name}.txt",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


class _serve_ledger:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    async def __aenter__(self) -> asyncio.subprocess.Process:
        log = Path(self.env["LIAISON_DATA_DIR"]).parent / "ledger.log"
        with log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(processes.LIAISON), "serve", "ledger", env=self.env, stdout=out, stderr=out
            )
        return self.proc

    async def __aexit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.proc.wait(), 30)
        if os.environ.get("DRAIN_TRACE"):
            log = Path(self.env["LIAISON_DATA_DIR"]).parent / "ledger.log"
            print(log.read_text(errors="replace")[-6000:], flush=True)


async def _joined(redis: Redis, pid: int) -> None:
    async with asyncio.timeout(60):
        while True:
            consumers: Any = await redis.xinfo_consumers(streams.SEIZURES, streams.LEDGER_GROUP)
            if any(f":{pid}:" in c["name"].decode() for c in consumers):
                return
            await asyncio.sleep(0.05)


async def run(
    n: int, rounds: int, variants: list[str], env: dict[str, str], pause: float = 8.0
) -> dict[str, list[float]]:
    """Rates (events/s) of each variant, ``rounds`` times, variants alternating."""
    payloads = build(n)
    rates: dict[str, list[float]] = {v: [] for v in variants}
    with (
        tempfile.TemporaryDirectory(prefix="liaison-drain-") as tmp,
        out_of_gc(),
        EmbeddedRedis(Path(tmp) / "redis") as server,
    ):
        redis = Redis.from_url(server.url)
        try:
            bench = Bench(server.url, redis, payloads, Path(tmp), env)
            bench.pause = pause
            for r in range(rounds):
                order = variants if r % 2 == 0 else variants[::-1]
                for variant in order:
                    name, _, bench.code = variant.partition("@")
                    work: Callable[[], Awaitable[float]] = getattr(bench, name)
                    rate = await work()
                    rates[variant].append(rate)
                    print(f"round {r + 1} {variant:8s} {rate:9,.0f} events/s", flush=True)
        finally:
            await redis.aclose()
    return rates


def main(argv: list[str] | None = None) -> int:
    """Command line: run the variants, print each rate and the medians."""
    parser = argparse.ArgumentParser(prog="python -m bench.tools.ledger_drain", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), help=", ".join(VARIANTS))
    parser.add_argument("--pause", type=float, default=8.0, help="seconds stopped (default 8)")
    parser.add_argument("--env", action="append", default=[], help="LIAISON_X=Y for the process")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    rates = asyncio.run(run(args.events, args.rounds, args.variants, env, args.pause))
    base = sorted(rates[args.variants[0]])[len(rates[args.variants[0]]) // 2]
    for variant, values in rates.items():
        median = sorted(values)[len(values) // 2]
        print(
            f"{variant:8s} median {median:9,.0f} events/s  x{median / base:.2f} of {args.variants[0]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
