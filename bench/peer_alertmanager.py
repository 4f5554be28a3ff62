"""Webhook delivery side by side with Prometheus Alertmanager (``make bench-peer``).

The same work for both (:mod:`bench.support.peer_products`): every alert to 4 webhook
receivers of one local receiver process (:mod:`bench.support.peer_receiver`), sent
open-loop (on a clock, never waiting for an answer before the next send):

* ``50`` and ``200`` alerts/s for ``--seconds`` each: latency from the moment an
  alert was sent to its arrival at each receiver, p50 / p99 / max;
* a peak: 2,000 alerts at once (two requests of 1,000): deliveries per second
  from the first send to the last arrival;
* CPU seconds and peak RSS of each product's processes (Liaison: ``liaison up``,
  its webhook worker process and its Valkey), per delivery;
* deliveries lost or duplicated, and (Liaison) signatures that verify.

Each repetition starts fresh instances and alternates which product goes first;
the machine's load average is recorded. Writes ``bench/results/peer-alertmanager.md``.
``python -m bench.peer_alertmanager [--seconds 20] [--repetitions 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx

from bench.peer_report import Phase, Run, render
from bench.support import peer_products
from bench.support.peer_products import UNITS, Product, free_port
from bench.support.procs import command_line, sample

RESULTS = Path(__file__).parent / "results" / "peer-alertmanager.md"
TICK = 0.01
"""Seconds between sends of the open-loop sender."""
PEAK = 2000
DRAIN_IDLE = 30.0
"""Seconds without a new arrival after which the rest counts as lost."""


class Receiver:
    """The receiver process and its statistics."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    async def reset(self) -> None:
        async with httpx.AsyncClient() as client:
            await client.get(f"{self.base}/reset")

    async def stats(self) -> dict[str, object]:
        async with httpx.AsyncClient(timeout=60) as client:
            return dict((await client.get(f"{self.base}/stats")).json())

    async def count(self) -> int:
        return len(list(await self.stats_rows()))

    async def stats_rows(self) -> list[list[float]]:
        rows = (await self.stats())["rows"]
        assert isinstance(rows, list)
        return rows


def _role(pid: int) -> str:
    line = command_line(pid)
    if "webhook_process" in line:
        return "webhooks"
    if "valkey" in line or "redis" in line:
        return "valkey"
    return "main"


def _cpu_rss(product: Product) -> tuple[dict[str, float], float]:
    cpu: dict[str, float] = {}
    rss = 0.0
    for pid in product.pids():
        try:
            reading = sample(pid)
        except OSError:
            continue
        role = _role(pid)
        cpu[role] = cpu.get(role, 0.0) + reading.cpu
        rss += reading.peak / 2**20
    return cpu, rss


async def _phase(
    product: Product, receiver: Receiver, name: str, numbers: list[int], rate: float | None
) -> Phase:
    """Send ``numbers`` at ``rate`` per second (None: all at once), wait for every delivery."""
    await receiver.reset()
    phase = Phase(name, len(numbers))
    sent: dict[int, float] = {}
    cpu_before, _ = _cpu_rss(product)
    tasks: list[asyncio.Task[None]] = []

    def send(batch: list[int]) -> None:
        now = time.time()
        for n in batch:
            sent[n] = now
        tasks.append(asyncio.create_task(product.send(batch)))

    if rate is None:
        send(numbers[: len(numbers) // 2])
        send(numbers[len(numbers) // 2 :])
    else:
        start, done = time.monotonic(), 0
        while done < len(numbers):
            due = min(len(numbers), int((time.monotonic() - start) * rate) + 1)
            if due > done:
                send(numbers[done:due])
                done = due
            await asyncio.sleep(TICK)
    await asyncio.gather(*tasks)
    expected = len(numbers) * len(UNITS)
    last, last_change = -1, time.monotonic()
    while True:
        count = await receiver.count()
        if count >= expected or time.monotonic() - last_change > DRAIN_IDLE:
            break
        if count != last:
            last, last_change = count, time.monotonic()
        await asyncio.sleep(0.25)
    stats = await receiver.stats()
    cpu_after, rss = _cpu_rss(product)
    rows = stats["rows"]
    assert isinstance(rows, list)
    seen: set[tuple[int, int]] = set()
    first = min(sent.values())
    end = first
    for receiver_index, n, arrived in rows:
        key = (int(receiver_index), int(n))
        if key in seen or n not in sent:
            phase.duplicates += key in seen
            continue
        seen.add(key)
        phase.latencies.append(arrived - sent[int(n)])
        end = max(end, arrived)
    phase.deliveries = len(seen)
    phase.lost = expected - len(seen)
    phase.seconds = end - first
    phase.cpu_by = {role: cpu_after[role] - cpu_before.get(role, 0.0) for role in cpu_after}
    phase.cpu = sum(phase.cpu_by.values())
    phase.rss_mb = rss
    phase.valid, phase.invalid = int(stats["valid"]), int(stats["invalid"])  # type: ignore[call-overload]
    phase.connections = int(stats["connections"])  # type: ignore[call-overload]
    return phase


async def _run(
    start: Callable[[Path, int], AbstractAsyncContextManager[Product]],
    receiver: Receiver,
    repetition: int,
    seconds: float,
) -> Run:
    with tempfile.TemporaryDirectory(prefix="liaison-peer-") as tmp:
        async with start(Path(tmp), receiver.port) as product:
            run = Run(product.name, repetition, load=os.getloadavg())
            counter = iter(range(1, 10**9))
            for rate in (50, 200):
                numbers = [next(counter) for _ in range(int(rate * seconds))]
                run.phases.append(await _phase(product, receiver, f"{rate}/s", numbers, rate))
            numbers = [next(counter) for _ in range(PEAK)]
            run.phases.append(await _phase(product, receiver, "peak", numbers, None))
            print(
                f"  {product.name} rep {repetition}: "
                + ", ".join(
                    f"{p.name} p50 {p.pct(0.5):.1f} p99 {p.pct(0.99):.1f} ms, {p.rate:.0f}/s, "
                    f"lost {p.lost}, dup {p.duplicates}"
                    for p in run.phases
                ),
                flush=True,
            )
            return run


def _receiver_process(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.support.peer_receiver", str(port), peer_products.SECRET],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # listening
    return proc


def _stop_receiver(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


async def main(seconds: float, repetitions: int) -> list[Run]:
    """Both products, ``repetitions`` times, alternating which goes first."""
    peer_products.ensure_alertmanager()
    port = free_port()
    proc = _receiver_process(port)
    receiver = Receiver(port)
    runs = []
    try:
        products = [peer_products.alertmanager, peer_products.liaison]
        for repetition in range(1, repetitions + 1):
            order = products if repetition % 2 else products[::-1]
            for start in order:
                runs.append(await _run(start, receiver, repetition, seconds))
    finally:
        _stop_receiver(proc)
    return runs


def cli() -> None:
    """``python -m bench.peer_alertmanager``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = asyncio.run(main(args.seconds, args.repetitions))
    args.out.write_text(render(runs, args.seconds))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    cli()


async def smoke(alerts: int = 20) -> Run:
    """Liaison's side only, a few alerts at once (the suite's check that the bench still runs;
    Alertmanager is not installed for it)."""
    port = free_port()
    proc = _receiver_process(port)
    try:
        with tempfile.TemporaryDirectory(prefix="liaison-peer-") as tmp:
            async with peer_products.liaison(Path(tmp), port) as product:
                run = Run(product.name, 1, load=os.getloadavg())
                numbers = list(range(1, alerts + 1))
                run.phases.append(await _phase(product, Receiver(port), "peak", numbers, None))
                return run
    finally:
        _stop_receiver(proc)
