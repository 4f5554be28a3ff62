"""Alert fan-out benchmark: latency at a steady rate, and peak deliveries per second.

The notifier runs as ``liaison serve notifier`` (a separate process, wired by
``services/bootstrap.py`` as in ``liaison up``) on an embedded Valkey. This
process publishes alerts through :class:`~services.core.bus.RedisPublisher` (the
HTTP API's path) and watches the units' feeds (:mod:`bench.support.fanout_watch`).

* **Latency**: ``RATE`` alerts/s for ``--seconds``, each reaching five units;
  from the moment ``publish`` returned (the alert is accepted) until the
  last recipient's delivery is seen on its feed. p50 / p99 / max.
* **Peak**: the notifier is frozen (SIGSTOP), ``--burst`` alerts are
  published, it is let go (SIGCONT); deliveries / seconds until the last one
  is seen.

Next to them, in the same run: one stream hop's latency (XADD → a blocked
XREADGROUP) and pipelined HSET throughput. ``python -m bench.fanout``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from redis.asyncio import Redis

from bench.support import fanout_raw
from bench.support.fanout_report import FanoutReport, render
from bench.support.fanout_watch import Watcher, alerts
from bench.support.raw_redis import server_version
from bench.support.report import machine
from schemas.topology import default_topology
from services.core import bus, streams
from services.core.redis_server import EmbeddedRedis

RESULTS = Path(__file__).parent / "results" / "fanout-latest.md"
LIAISON = Path(sys.executable).parent / "liaison"
RATE = 200
PUBLISH_BATCH = 100


@contextlib.contextmanager
def notifier_process(url: str, data_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``liaison serve notifier`` on ``url``; SIGTERMed (then SIGKILLed) at the end."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env = {**base, "LIAISON_REDIS_URL": url, "LIAISON_DATA_DIR": str(data_dir)}
    with (data_dir / "notifier.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(LIAISON), "serve", "notifier"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(seconds: float = 20.0, burst: int = 4000, rate: int = RATE) -> FanoutReport:
    """Measure raw limits, steady latency and the burst on a fresh embedded server."""
    with (
        tempfile.TemporaryDirectory(prefix="liaison-fanout-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as server,
    ):
        redis = Redis.from_url(server.url)
        try:
            report = FanoutReport(machine(await server_version(redis)))
            report.hop = await fanout_raw.hop_latencies(server.url)
            report.hset_per_s = await fanout_raw.hset_pipelined(redis)
            await bus.ensure_groups(redis)
            with notifier_process(server.url, Path(tmp)) as proc:
                sent = await _measure(report, server.url, proc, seconds, burst, rate)
            await check(redis, sent)
            report.dead_letters = int(await redis.xlen(streams.DEAD_LETTERS))
        finally:
            await redis.aclose()
    return report


async def _measure(
    report: FanoutReport,
    url: str,
    proc: subprocess.Popen[bytes],
    seconds: float,
    burst: int,
    rate: int,
) -> dict[str, set[str]]:
    """The steady run and the burst; returns every alert published with its recipients."""
    topology = default_topology()
    redis, watch = Redis.from_url(url), Redis.from_url(url)
    watcher = Watcher(watch, list(topology.units))
    watching = asyncio.create_task(watcher.run())
    publisher = bus.RedisPublisher(redis)
    sent: dict[str, set[str]] = {}
    try:
        await _reading(redis, proc)
        warm, recipients = alerts(100, topology)
        sent |= recipients
        watcher.expect(recipients)
        await publisher.publish(warm)
        await watcher.until_complete(list(recipients), 30)

        steady, recipients = alerts(max(1, int(seconds * rate)), topology)
        sent |= recipients
        watcher.expect(recipients)
        accepted: dict[str, float] = {}
        steady_cpu = cpu_seconds(proc.pid)
        start = time.perf_counter()
        for i, alert in enumerate(steady):
            delay = start + i / rate - time.perf_counter()  # open loop: late ones go at once
            if delay > 0:
                await asyncio.sleep(delay)
            await publisher.publish([alert])
            accepted[alert.id] = time.perf_counter()
        await watcher.until_complete(list(accepted), 60)
        report.cpu_ms_per_alert = (cpu_seconds(proc.pid) - steady_cpu) * 1000 / len(steady)
        report.latencies = [watcher.completed[a] - t for a, t in accepted.items()]
        report.alerts = len(steady)
        report.recipients = sum(map(len, recipients.values()))

        events, recipients = alerts(burst, topology)
        sent |= recipients
        watcher.expect(recipients)
        proc.send_signal(signal.SIGSTOP)
        for i in range(0, burst, PUBLISH_BATCH):
            await publisher.publish(events[i : i + PUBLISH_BATCH])
        server = int((await redis.info("server"))["process_id"])
        pids = (proc.pid, server, os.getpid())
        cpu = [cpu_seconds(pid) for pid in pids]
        proc.send_signal(signal.SIGCONT)
        go = time.perf_counter()
        await watcher.until_complete(list(recipients), 120)
        wall = time.perf_counter() - go
        report.peak_cpu = [(cpu_seconds(p) - c) / wall for p, c in zip(pids, cpu, strict=True)]
        report.peak_deliveries = sum(map(len, recipients.values()))
        report.peak_seconds = max(watcher.completed[a] for a in recipients) - go
        report.duplicates = watcher.duplicates
        await _drained(redis)
        return sent
    finally:
        watcher.stopped = True
        await asyncio.wait_for(watching, 5)
        await redis.aclose()
        await watch.aclose()


async def _reading(redis: Redis, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Wait until the notifier process has joined its consumer group."""
    async with asyncio.timeout(timeout):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"liaison serve notifier exited with {proc.returncode}")
            consumers = await redis.xinfo_consumers(streams.ALERTS, streams.NOTIFIER_GROUP)
            if any(f":{proc.pid}:" in c["name"].decode() for c in consumers):
                return
            await asyncio.sleep(0.05)


async def _drained(redis: Redis, timeout: float = 30) -> None:
    """Wait until the notifier acknowledged everything (its receipts are published by then)."""
    async with asyncio.timeout(timeout):
        while True:
            groups = await redis.xinfo_groups(streams.ALERTS)
            info = next(g for g in groups if g["name"] == streams.NOTIFIER_GROUP.encode())
            if info["pending"] == 0 and info["lag"] == 0:
                return
            await asyncio.sleep(0.05)


async def check(redis: Redis, sent: dict[str, set[str]]) -> None:
    """Every alert in every recipient's inbox, one ``alert.delivered`` each; raises if not."""
    by_unit: dict[str, set[str]] = {}
    for alert, units in sent.items():
        for unit in units:
            by_unit.setdefault(unit, set()).add(alert)
    for unit, expected in by_unit.items():
        stored = {  # fields are alert keys, "<origin>/<alert id>"
            (k.decode() if isinstance(k, bytes) else k).partition("/")[2]
            for k in await redis.hkeys(streams.inbox_key(unit))
        }
        if stored != expected:
            raise RuntimeError(
                f"{unit}: {len(expected - stored)} missing, {len(stored - expected)} unexpected"
            )
    receipts = await redis.xlen(streams.RECEIPTS)
    deliveries = sum(map(len, sent.values()))
    if receipts != deliveries:
        raise RuntimeError(f"{receipts} receipts for {deliveries} deliveries")


async def smoke(alerts: int = 40) -> FanoutReport:
    """A tiny run for the test suite: raises if a delivery is missing or repeated; no timing."""
    report = await run(seconds=alerts / 2 / RATE, burst=alerts // 2)
    if report.duplicates or report.dead_letters or not report.latencies:
        raise RuntimeError(f"{report.duplicates} duplicates, {report.dead_letters} dead letters")
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: run, print the report, write it to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m bench fanout", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="steady run (default 20)")
    parser.add_argument("--rate", type=int, default=RATE, help=f"alerts/s (default {RATE})")
    parser.add_argument("--burst", type=int, default=4000, help="burst alerts (default 4000)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--no-out", action="store_true", help="print only")
    args = parser.parse_args(argv)
    text = render(asyncio.run(run(args.seconds, args.burst, args.rate)))
    sys.stdout.write(text)
    if not args.no_out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
