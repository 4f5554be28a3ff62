"""``replicated`` against ``standard`` durability: ingest → ledger persisted, same run.

``python -m bench replicated [--events N] [--senders K]`` starts three Valkey processes on
loopback (a primary with AOF, two replicas), then for each mode a runtime with ingest and the
ledger (SQLite) in this process, and publishes N events in batches of 500 from K concurrent
senders through the product's publisher (what the HTTP API calls). It reports the publish
rate and the median batch acknowledgement, and the time until the ledger held every event.

The cost of ``replicated``: after the batch's script, the publisher sends ``WAIT 2`` (both
replicas confirm they received it) and ``WAITAOF 1 0`` (the primary wrote it to its AOF and
fsynced) on the same connection, so every acknowledgement waits a round trip to the
replicas and one fsync; batches of concurrent senders share them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from bench.support.payloads import build
from services.bootstrap import Runtime
from services.core.config import FileConfig
from services.core.redis_server import find_server_binary, free_port
from services.core.settings import Settings

BATCH = 500


@contextmanager
def three_servers(root: Path) -> Iterator[str]:
    """A primary and two replicas on loopback; yields the primary's URL."""
    binary, ports, procs = str(find_server_binary()), [free_port() for _ in range(3)], []
    try:
        for i, port in enumerate(ports):
            directory = root / f"valkey{i}"
            directory.mkdir()
            args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                    "--appendonly", "yes", "--save", ""]  # fmt: skip
            if i:
                args += ["--replicaof", "127.0.0.1", str(ports[0])]
            procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
        primary = redis.Redis(port=ports[0])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:  # attached and done with the first full sync (until then WAIT counts 0)
                info = primary.info("replication")
                online = [info.get(f"slave{i}", {}).get("state") for i in range(2)]
                if online == ["online", "online"]:
                    break
            except redis.ConnectionError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError("the replicas did not attach")
        yield f"redis://127.0.0.1:{ports[0]}"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def measure(
    url: str, workdir: Path, mode: str, events: int, senders: int
) -> dict[str, float]:
    """One mode: publish rate, median batch acknowledgement, time until all are recorded."""
    redis.Redis.from_url(url).flushall()
    payloads = build(events).events
    settings = Settings(redis_url=url, data_dir=workdir / mode, durability=mode, redis_replicas=2)
    async with Runtime(settings, FileConfig(), services=("ingest", "ledger")) as runtime:
        batches = [payloads[i : i + BATCH] for i in range(0, len(payloads), BATCH)]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(batches)):
            queue.put_nowait(index)
        waits: list[float] = []

        async def sender() -> None:
            while not queue.empty():
                batch = batches[queue.get_nowait()]
                began = time.perf_counter()
                await runtime.publisher.publish(batch)
                waits.append(time.perf_counter() - began)

        start = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(senders)))
        published = time.perf_counter() - start
        while await runtime.ledger.count() < events:
            await asyncio.sleep(0.01)
        persisted = time.perf_counter() - start
    return {
        "publish/s": events / published,
        "batch ack p50 ms": statistics.median(waits) * 1000,
        "ledger persisted/s": events / persisted,
    }


async def run(events: int, senders: int) -> dict[str, dict[str, float]]:
    """Both modes on the same three servers."""
    with (
        tempfile.TemporaryDirectory(prefix="liaison-bench-repl-") as tmp,
        three_servers(Path(tmp)) as url,
    ):
        return {
            mode: await measure(url, Path(tmp), mode, events, senders)
            for mode in ("standard", "replicated")
        }


def render(results: dict[str, dict[str, float]], events: int, senders: int) -> str:
    """The markdown table."""
    columns = list(next(iter(results.values())))
    lines = [f"{events} events, batches of {BATCH}, {senders} senders; primary + 2 replicas "
             "(AOF everysec) on loopback, ledger on SQLite", "",
             "| mode | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]  # fmt: skip
    for mode, row in results.items():
        lines.append(f"| `{mode}` | " + " | ".join(f"{row[c]:,.1f}" for c in columns) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run and print."""
    parser = argparse.ArgumentParser(prog="python -m bench replicated", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--senders", type=int, default=8)
    args = parser.parse_args(argv)
    print(render(asyncio.run(run(args.events, args.senders)), args.events, args.senders))
    return 0
