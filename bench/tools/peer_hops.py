"""Where one alert's time goes in the peer benchmark's Liaison, hop by hop.

``python -m bench.tools.peer_hops [--rate 200] [--seconds 10] [--env KEY=VALUE ...]``
starts the peer benchmark's ``liaison up`` and receiver (:mod:`bench.support.peer_products`),
sends ``bench-N`` alerts open-loop at ``--rate`` for ``--seconds``, and time-stamps each
alert at every hop it leaves a trace at, without touching the code under test:

* **sent**: the sender's clock when the request went out; **202**: when its answer came;
* **alert XADD**: the server's time of the alert's entry on the alerts stream (its entry
  id, ms), read live by a probe ``XREAD`` beside the services' groups;
* **inbox**: the first of the alert's unit feeds' entries (written by the inbox script);
* **job XADD**: the first webhook job's entry on the job stream;
* **arrival**: each delivery's arrival at the receiver.

Clocks: every process is on this machine (one clock); entry ids have 1 ms resolution.
Prints, for each hop, the p50 / p90 / p99 of the time from the previous hop, and the CPU
per alert of each process during the timed sends (``/proc``).

``--profile PREFIX``: py-spy (not a dependency: ``pip install py-spy`` into the venv)
records each Python process to ``PREFIX-<pid>.txt`` (raw, collapsed stacks).
``--apart SERVICE``: also runs ``liaison serve SERVICE`` on the same server and data
directory. ``liaison up`` runs every service itself, so for the experiment of issue 16
(the notifier or the ledger in a process of its own) ``up`` was run without that service
by a local change; without one, two instances share the service's consumer group.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.peer_alertmanager import Receiver, _receiver_process, _stop_receiver
from bench.support import peer_products
from bench.support.peer_products import UNITS, free_port
from bench.support.procs import command_line, sample
from services.core import streams

NUMBER = re.compile(rb"bench-(\d+)")


def _ms(entry_id: bytes) -> float:
    return int(entry_id.split(b"-")[0]) / 1000


async def _probe(redis: Redis, keys: list[str], seen: dict[str, dict[int, float]]) -> None:
    """Record, per stream, the first entry time of each alert number found in an entry."""
    last = dict.fromkeys(keys, "$")
    while True:
        reply: Any = await redis.xread(last, block=0)  # type: ignore[arg-type]
        for raw_key, entries in reply:
            key = raw_key.decode()
            for entry_id, fields in entries:
                last[key] = entry_id.decode()
                for value in fields.values():
                    found = NUMBER.search(value)
                    if found:
                        seen[key].setdefault(int(found.group(1)), _ms(entry_id))
                        break


def _cpu(product: Any, apart: Any = None) -> dict[str, float]:
    """CPU seconds of the product's processes so far, by role (main, webhooks, valkey)."""
    by: dict[str, float] = {}
    if apart is not None:
        by["apart"] = sample(apart.pid).cpu
    for pid in product.pids():
        line = command_line(pid)
        role = "webhooks" if "webhook" in line else "valkey" if "valkey" in line else "main"
        try:
            by[role] = by.get(role, 0.0) + sample(pid).cpu
        except OSError:
            continue
    return by


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def _send(
    product: Any,
    numbers: list[int],
    rate: float,
    sent: dict[int, float],
    answered: dict[int, float],
) -> None:
    async def send(batch: list[int]) -> None:
        now = time.time()
        for n in batch:
            sent[n] = now
        await product.send(batch)
        done = time.time()
        for n in batch:
            answered[n] = done

    tasks = []
    start, done = time.monotonic(), 0
    while done < len(numbers):
        due = min(len(numbers), int((time.monotonic() - start) * rate) + 1)
        if due > done:
            tasks.append(asyncio.create_task(send(numbers[done:due])))
            done = due
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)


async def main(
    rate: float,
    seconds: float,
    extra_env: dict[str, str],
    profile: Path | None,
    warmup: float,
    apart: str | None = None,
) -> None:
    port = free_port()
    proc = _receiver_process(port)
    receiver = Receiver(port)
    try:
        with tempfile.TemporaryDirectory(prefix="liaison-hops-") as tmp:
            async with peer_products.liaison(Path(tmp), port, extra_env) as product:
                sock = Path(tmp) / "var" / "redis" / "redis.sock"
                apart_proc = None
                if apart:
                    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
                    env |= {
                        "LIAISON_CONFIG": str(Path(tmp) / "liaison.yaml"),
                        "LIAISON_DATA_DIR": str(Path(tmp) / "var"),
                        "LIAISON_REDIS_URL": f"unix://{sock}",
                        **extra_env,
                    }
                    apart_proc = await asyncio.create_subprocess_exec(
                        str(Path(sys.executable).parent / "liaison"),
                        "serve",
                        apart,
                        env=env,
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
                redis = Redis(unix_socket_path=str(sock))
                feeds = [streams.feed_key(u) for u in UNITS]
                keys = [streams.ALERTS, streams.WEBHOOKS, *feeds]
                seen: dict[str, dict[int, float]] = {k: {} for k in keys}
                probe = asyncio.create_task(_probe(redis, keys, seen))
                await asyncio.sleep(0.5)
                sent: dict[int, float] = {}
                answered: dict[int, float] = {}
                base = 10**6
                if warmup:
                    warm = list(range(base, base + int(50 * warmup)))
                    await _send(product, warm, 50, {}, {})
                    while await receiver.count() < len(warm) * len(UNITS):
                        await asyncio.sleep(0.25)
                await receiver.reset()
                total = int(rate * seconds)
                spy = None
                if profile is not None:
                    pids = product.pids()
                    spy = [
                        await asyncio.create_subprocess_exec(
                            str(Path(sys.executable).parent / "py-spy"),
                            "record",
                            "-p",
                            str(pid),
                            "-o",
                            f"{profile}-{pid}.txt",
                            "-f",
                            "raw",
                            "-r",
                            "250",
                            "-d",
                            str(int(seconds)),
                            "--nonblocking",
                            stdout=asyncio.subprocess.DEVNULL,
                            stderr=asyncio.subprocess.DEVNULL,
                        )
                        for pid in pids
                        if "valkey" not in command_line(pid)
                    ]
                cpu_before = _cpu(product, apart_proc)
                await _send(product, list(range(1, total + 1)), rate, sent, answered)
                while await receiver.count() < total * len(UNITS):
                    await asyncio.sleep(0.25)
                await asyncio.sleep(0.3)
                cpu_after = _cpu(product, apart_proc)
                probe.cancel()
                for p in spy or []:
                    await p.wait()
                rows: list[list[float]] = await receiver.stats_rows()
                await redis.aclose()
                if apart_proc is not None:
                    apart_proc.terminate()
                    await apart_proc.wait()
    finally:
        _stop_receiver(proc)
    arrivals: dict[int, list[float]] = {}
    for _, n, at in rows:
        arrivals.setdefault(int(n), []).append(at)
    hops: dict[str, list[float]] = {
        k: []
        for k in (
            "sent → 202",
            "sent → alert XADD",
            "alert XADD → inbox",
            "inbox → job XADD",
            "job XADD → first arrival",
            "first → last arrival",
            "sent → each arrival",
        )
    }
    inbox = {
        n: min(seen[f][n] for f in feeds if n in seen[f])
        for n in sent
        if any(n in seen[f] for f in feeds)
    }
    for n, t0 in sent.items():
        alert, job = seen[streams.ALERTS].get(n), seen[streams.WEBHOOKS].get(n)
        if alert is None or job is None or n not in inbox or n not in arrivals:
            continue
        first, last = min(arrivals[n]), max(arrivals[n])
        hops["sent → 202"].append(answered[n] - t0)
        hops["sent → alert XADD"].append(alert - t0)
        hops["alert XADD → inbox"].append(inbox[n] - alert)
        hops["inbox → job XADD"].append(job - inbox[n])
        hops["job XADD → first arrival"].append(first - job)
        hops["first → last arrival"].append(last - first)
        hops["sent → each arrival"].extend(a - t0 for a in arrivals[n])
    print(f"rate {rate:g}/s for {seconds:g} s; load {os.getloadavg()[0]:.2f}; {extra_env}")
    print(f"{'hop':28} {'n':>6} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8}  (ms)")
    for name, values in hops.items():
        mean = statistics.fmean(values) * 1000 if values else 0.0
        print(
            f"{name:28} {len(values):6d} {_pct(values, 0.5):8.1f} {_pct(values, 0.9):8.1f} "
            f"{_pct(values, 0.99):8.1f} {mean:8.1f}"
        )
    cpu = {k: (cpu_after[k] - cpu_before.get(k, 0.0)) * 1000 / total for k in cpu_after}
    print("CPU per alert (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items())))
    print(json.dumps({k: round(_pct(v, 0.5), 2) for k, v in hops.items()}))


def cli() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for liaison up")
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles to PREFIX-<pid>.txt")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds at 50/s first")
    parser.add_argument("--apart", help="run this service as `liaison serve` beside `up`")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    asyncio.run(main(args.rate, args.seconds, env, args.profile, args.warmup, args.apart))


if __name__ == "__main__":
    cli()
