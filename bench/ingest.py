"""HTTP batch ingest: events/s accepted into the stream, next to this machine's raw limits.

``python -m bench.ingest [--events N] [--senders K] [--out FILE | --no-out]``
starts an embedded server, then ``liaison serve api`` as its own process
(as deployed: the client here does not share its interpreter), and POSTs
pre-serialised batches of 1000 ``seizure.reported`` events from K concurrent
senders until N are accepted. Raw limits of the same run: pydantic
validation of the canonical event (the server's unavoidable work per event),
pipelined XADD (redis-py), and both in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from bench.support import raw_redis
from bench.support.payloads import build
from bench.support.procs import child_matching, cpu_seconds, tree_cpu_seconds
from bench.support.report import Figure, Report, machine, render, serial, write
from schemas.events import CloudEvent
from services.core import streams
from services.core.auth import token_digest
from services.core.redis_server import EmbeddedRedis, free_port

RESULTS = Path(__file__).parent / "results" / "ingest-latest.md"
TARGET = 15_000  # events/s accepted, 2 cores (issue 5)
BATCH = 1000
LIAISON = Path(sys.executable).parent / "liaison"
WARM_UP = json.dumps({"padding": "x" * 20_000}).encode()
"""One object over 16 KiB that is no event: screened in a worker process (which it starts), and
refused; on the event loop it costs a glance at its first character."""
VALIDATE, XADD = "pydantic: validate one CloudEvent from JSON", "XADD pipelined, redis-py"
NOTES = [
    "Product: `liaison serve api` in its own process; senders POST pre-serialised JSON arrays of "
    f"{BATCH} events (`Content-Type: application/json`) over keep-alive connections; the clock runs "
    "from the first request to the last 202, and the stream is then checked to hold every event.",
    "`serial` limit = 1 / (1/validate + 1/XADD): what one process must do per event at the least.",
    "Batches up to 2 MiB (every batch here) are parsed and validated on the API's event loop, a "
    "slice at a time; its two screening worker processes (nice 10, started by a refused warm-up "
    "body before the clock, as on a long-running server) take only larger or irregular bodies "
    "and publishers whose refused requests used up their allowance: their CPU is counted below.",
]


@asynccontextmanager
async def api_process(
    redis_url: str, workdir: Path, principals: Sequence[dict[str, Any]]
) -> AsyncIterator[str]:
    """``liaison serve api`` (the publish API) on a free port with these principals; yields its
    base URL, and stops it after."""
    config = workdir / "liaison.yaml"
    config.write_text(json.dumps({"principals": list(principals)}))  # JSON is YAML
    port = free_port()
    env = {
        **os.environ,
        "LIAISON_REDIS_URL": redis_url,
        "LIAISON_CONFIG": str(config),
        "LIAISON_DATA_DIR": str(workdir / "var"),
        "LIAISON_HTTP_ADDR": f"127.0.0.1:{port}",
    }
    with (workdir / "ingest.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            str(LIAISON), "serve", "api", env=env, stdout=log, stderr=log
        )
        base = f"http://127.0.0.1:{port}"
        try:
            await _until_ready(base, proc)
            yield base
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@asynccontextmanager
async def ingest_process(
    redis_url: str, workdir: Path, units: Sequence[str]
) -> AsyncIterator[tuple[str, str]]:
    """``liaison serve api`` (the publish API) on a free port with one publisher; yields (base URL,
    token)."""
    token = secrets.token_urlsafe(24)
    principal = {
        "name": "bench",
        "role": "publisher",
        "token_sha256": token_digest(token),
        "units": list(units),
    }
    async with api_process(redis_url, workdir, [principal]) as base:
        yield base, token


async def _until_ready(base: str, proc: asyncio.subprocess.Process, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"liaison serve api exited with {proc.returncode}")
            try:
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("liaison serve api did not become ready")


async def post_batches(
    base: str,
    token: str,
    bodies: Iterable[bytes],
    senders: int,
    on_clock: Callable[[], object] = lambda: None,
) -> float:
    """Seconds to have every body accepted (202), ``senders`` requests in flight at once;
    ``on_clock`` is called as the clock starts (after the warm-up).

    Bodies are taken from ``bodies`` only when a sender is free, so a lazy
    iterable keeps a million events out of memory.
    """
    pending = iter(bodies)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    async def sender(client: httpx.AsyncClient) -> None:
        for body in pending:  # one iterator shared: each body goes to one sender
            response = await client.post(f"{base}/v1/events", content=body, headers=headers)
            if response.status_code != 202 or response.json()["duplicates"]:
                raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")

    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await client.get(f"{base}/healthz")  # connections warm, as a long-running sender's are
        # and the screening workers started, as a long-running server's are: an object over
        # 16 KiB that is refused (422) starts them and publishes nothing
        warm = await client.post(f"{base}/v1/events", content=WARM_UP, headers=headers)
        if warm.status_code != 422:
            raise RuntimeError(f"warm-up answered {warm.status_code}: {warm.text[:300]}")
        on_clock()
        start = time.perf_counter()
        await asyncio.gather(*(sender(client) for _ in range(senders)))
        return time.perf_counter() - start


def validate_rate(wire: Sequence[bytes]) -> float:
    """Events/s through ``CloudEvent.model_validate_json`` and back to JSON (one core)."""
    start = time.perf_counter()
    for raw in wire:
        CloudEvent.model_validate_json(raw).to_json()
    return len(wire) / (time.perf_counter() - start)


async def run(events: int, *, senders: int = 4) -> Report:
    """Raw limits, then the product, on ``events`` events (a multiple of 1000 is best)."""
    payloads = build(events)
    wire, units = payloads.wire, sorted({e.unit for e in payloads.events if e.unit})
    bodies = [b"[" + b",".join(wire[i : i + BATCH]) + b"]" for i in range(0, events, BATCH)]
    with (
        tempfile.TemporaryDirectory(prefix="liaison-bench-ingest-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as server,
    ):
        redis = Redis.from_url(server.url)
        try:
            report = Report(
                events,
                payloads.mean_wire_bytes,
                machine(await raw_redis.server_version(redis)),
                notes=NOTES,
            )
            report.raw[VALIDATE] = validate_rate(payloads.wire)
            report.raw[XADD] = events / await raw_redis.xadd_pipelined(redis, payloads.wire)
            await redis.flushall()
            async with ingest_process(server.url, Path(tmp), units) as (base, token):
                pid = child_matching("serve api")
                clock: list[tuple[dict[int, float], float]] = []  # CPU as the clock starts
                elapsed = await post_batches(
                    base, token, bodies, senders, lambda: clock.append(_cpu(pid, server.pid))
                )
                (ingest0, server0), (ingest1, server1) = clock[0], _cpu(pid, server.pid)
                helpers = _helpers_cpu(pid, ingest0, ingest1)
            stored = await redis.xlen(streams.SEIZURES)
        finally:
            await redis.aclose()
    if stored != events:
        raise RuntimeError(f"ingest: {stored} events in the stream for {events} accepted")
    limit = serial(report.raw[VALIDATE], report.raw[XADD])
    name = f"HTTP batch ingest ({BATCH} per request, {senders} senders)"
    report.add(
        "Ingest", Figure(name, events / elapsed, "validate then XADD, serial", limit, TARGET)
    )
    report.add("Ingest", Figure(name, events / elapsed, VALIDATE, report.raw[VALIDATE]))
    ingest_us = (ingest1[pid] - ingest0[pid]) / events * 1e6
    server_us = (server1 - server0) / events * 1e6
    report.notes.append(
        f"CPU per event during the run: `liaison serve api` {ingest_us:.1f} µs, "
        f"its worker processes {helpers / events * 1e6:.1f} µs, the server {server_us:.1f} µs "
        "(utime + stime of /proc/PID/stat)."
    )
    return report


def _cpu(ingest: int, server: int | None) -> tuple[dict[int, float], float]:
    """CPU seconds of the ingest process and of each process below it, and of the server."""
    return tree_cpu_seconds(ingest), cpu_seconds(server) if server else 0.0


def _helpers_cpu(ingest: int, before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the processes below ``ingest`` spent between the two readings (screening
    workers, should any run: they are counted, not hidden)."""
    return sum(spent - before.get(pid, 0.0) for pid, spent in after.items() if pid != ingest)


def main(argv: list[str] | None = None) -> int:
    """Command line: run, print the table, write it to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m bench ingest", description=__doc__)
    parser.add_argument("--events", type=int, default=50_000, help="events (default 50000)")
    parser.add_argument("--senders", type=int, default=4, help="requests in flight (default 4)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--no-out", action="store_true", help="print only")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args.events, senders=args.senders))
    sys.stdout.write(render(report, title="Ingest benchmark"))
    if not args.no_out:
        write(report, args.out, title="Ingest benchmark")
        print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
