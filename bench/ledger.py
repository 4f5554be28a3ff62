"""Ledger benchmark: persisted events/s and replay/verify entries/s, next to raw limits.

``python -m bench.ledger [--events N] [--postgres] [--out FILE | --no-out]``
starts an embedded server in a temporary directory (or uses
``LIAISON_REDIS_URL``, which must hold no Liaison Exchange keys), measures the
raw limits of this machine — pipelined XADD, XREADGROUP+XACK in batches of
500, batched SQL append with SHA-256 chaining on the plain driver, full SQL
scans — then the product: events published with ``RedisPublisher``, consumed
by the ledger service on a FastStream broker into ``SqlLedger``, replayed and
verified.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path

from redis.asyncio import Redis

from bench.support import pg, product, raw_redis, raw_sql
from bench.support.payloads import Payloads, build, out_of_gc
from bench.support.report import Figure, Report, machine, render, serial, write
from services.core.redis_server import EmbeddedRedis
from services.ledger.app import LEDGER_OPTIONS
from services.ledger.engine import create_engine
from services.ledger.signing import load_or_create_signer
from services.ledger.store import SqlLedger

RESULTS = Path(__file__).parent / "results" / "ledger-latest.md"
PERSIST_TARGET = 20_000  # events/s into SQLite on 2 cores (the issue)
REPLAY_TARGET = 150_000  # entries/s, replay and verify
XADD_PACKED, XADD_CLIENT = "XADD pipelined, pre-packed RESP", "XADD pipelined, redis-py"
READ = "XREADGROUP+XACK, batches of 500 (redis-py)"
COMMIT_MAX = LEDGER_OPTIONS.max_records * LEDGER_OPTIONS.queue_batches  # the group commit's largest
NOTES = [
    "Raw limits: best of `--repeat` runs; XADD 1000 per round trip; SQL append = the ledger's own table, 500 "
    f"(or {COMMIT_MAX}, the ledger's largest group commit) rows per transaction on the plain driver, SHA-256 chain "
    "computed, stored text prepared before the clock starts.",
    f"`overlapped` limit = min(XREADGROUP+XACK, SQL append {COMMIT_MAX} per commit): the ledger reads while it "
    "commits (group commit), so the slower stage bounds it. `serial` limit = 1 / (1/XREADGROUP+XACK + 1/SQL append "
    "500): one consumer doing both in turn, as the ledger did before the group commit.",
    "Reads (replay, verify, entries and their raw scans) run on the product's ledger after it persisted "
    "the N events; each is the best of `--repeat` rounds. Replay = `audit.replay`, what `liaison ledger "
    "replay` runs, writing JSON lines (stored event text embedded) to /dev/null.",
    "Ledger persisted: from broker start until the ledger group has acknowledged every entry "
    "(XINFO GROUPS, polled every 50 ms; acks follow commits) and `SqlLedger.count()` = N; "
    "checkpoints signed as the service signs them (every 1000 entries, the record beside the key "
    "fsynced). SQLite: WAL, synchronous=FULL. PostgreSQL: fsync on.",
    "Absolute figures vary from run to run on a 2-core machine (the server, the ledger and the harness share it): compare ratios.",
]


async def run(events: int, *, postgres: bool = False, repeat: int = 3) -> Report:
    """Measure everything on ``events`` events: raw limits best of ``repeat``, the product once."""
    payloads = build(events)
    with (
        tempfile.TemporaryDirectory(prefix="liaison-bench-") as tmp,
        ExitStack() as stack,
        out_of_gc(),
    ):
        url = os.environ.get("LIAISON_REDIS_URL")
        if not url:
            url = stack.enter_context(EmbeddedRedis(Path(tmp) / "redis")).url
        async with AsyncExitStack() as cleanup:
            redis = Redis.from_url(url)
            cleanup.push_async_callback(redis.aclose)
            if await product.streams_in_use(redis):
                raise SystemExit(f"{url} holds Liaison Exchange keys: use an empty server")
            cleanup.push_async_callback(redis.delete, *product.PRODUCT_KEYS)
            version = await raw_redis.server_version(redis)
            report = Report(events, payloads.mean_wire_bytes, machine(version), notes=NOTES)
            report.machine["raw limits"] = f"best of {repeat}"
            for _ in range(repeat):
                await _redis_limits(report, url, redis, payloads)

            async def sqlite(name: str) -> str:
                return f"sqlite+aiosqlite:///{tmp}/{name}.sqlite3"

            await _backend(report, "SQLite", (redis, url), sqlite, payloads, repeat, Path(tmp))
            if postgres:
                server = stack.enter_context(pg.postgres_cluster())
                report.machine["postgresql"] = await pg.server_version(server)

                async def postgresql(name: str) -> str:
                    return await pg.create_database(server, name)

                await _backend(
                    report, "PostgreSQL", (redis, url), postgresql, payloads, repeat, Path(tmp)
                )
    return report


def _best(report: Report, name: str, rate: float) -> float:
    report.raw[name] = max(rate, report.raw.get(name, 0.0))
    return report.raw[name]


async def _redis_limits(report: Report, url: str, redis: Redis, payloads: Payloads) -> None:
    n = len(payloads.wire)
    _best(report, XADD_PACKED, n / await raw_redis.xadd_prepacked(url, payloads.wire))
    _best(report, READ, n / await raw_redis.xreadgroup_xack(redis, n))
    _best(report, XADD_CLIENT, n / await raw_redis.xadd_pipelined(redis, payloads.wire))


async def _backend(
    report: Report,
    name: str,
    server: tuple[Redis, str],
    database: Callable[[str], Awaitable[str]],
    p: Payloads,
    repeat: int,
    keys: Path,
) -> None:
    """Raw SQL limits (a fresh database each time), then the product on another, which signs
    checkpoints with a key of its own in ``keys``, as the service does."""
    redis, redis_url = server
    n, fixed = len(p.events), raw_sql.fixed_columns(p.events, p.stored)
    append = f"{name}: SQL append + SHA-256 chain, {{}} per commit"
    for i in range(repeat):
        for batch in (raw_sql.BATCH, COMMIT_MAX):
            raw_url = await database(f"raw{i}_{batch}")
            await _create_schema(raw_url)
            _settle()
            _best(report, append.format(batch), n / await raw_sql.append(raw_url, fixed, batch))
    append_rate, group_rate = (
        report.raw[append.format(raw_sql.BATCH)],
        report.raw[append.format(COMMIT_MAX)],
    )
    url = await database("ledger")

    await product.reset_streams(redis)
    publish_rate = n / await product.publish(redis, p.events)
    if "Redis" not in report.figures:  # one sample is enough; each backend gets fresh streams
        for limit in (XADD_PACKED, XADD_CLIENT):
            report.add(
                "Redis",
                Figure(
                    "publish (RedisPublisher: Lua, 1000 per call)",
                    publish_rate,
                    limit,
                    report.raw[limit],
                ),
            )
    ledger = SqlLedger(create_engine(url), load_or_create_signer(keys / f"{name}-key.pem"))
    try:
        await ledger.create_schema()
        _settle()
        persisted = n / await product.consume(redis_url, redis, ledger, n)
        reads = await _reads(name, ledger, url, n, repeat)
    finally:
        await ledger.close()

    target = PERSIST_TARGET if name == "SQLite" else None
    overlapped = min(report.raw[READ], group_rate)
    one_by_one = serial(report.raw[READ], append_rate)
    report.add(
        name,
        Figure(
            "ledger persisted (broker → SqlLedger)",
            persisted,
            "XREADGROUP+XACK ∥ SQL append, overlapped",
            overlapped,
            target,
        ),
    )
    report.add(
        name,
        Figure(
            "ledger persisted (broker → SqlLedger)",
            persisted,
            "XREADGROUP+XACK then SQL append, serial",
            one_by_one,
        ),
    )
    report.add(
        name,
        Figure(
            "ledger persisted (broker → SqlLedger)",
            persisted,
            "SQL append alone, 500 per commit",
            append_rate,
        ),
    )
    _add_reads(report, name, n, reads)


async def _reads(name: str, ledger: SqlLedger, url: str, n: int, repeat: int) -> dict[str, float]:
    """Best seconds of ``repeat`` rounds of each read: the product's, then the raw scans'."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        replay_s, seen = await product.replay(ledger)
        verify_s, verdict = await product.verify(ledger)
        entries_s, parsed = await product.entries(ledger)
        if seen != n or parsed != n or not verdict.ok or verdict.count != n:
            raise RuntimeError(
                f"{name}: replay wrote {seen}, entries {parsed}, verify {verdict.to_dict()}"
            )
        raw = await raw_sql.scans(url)
        rounds = {
            "replay": replay_s,
            "verify": verify_s,
            "entries": entries_s,
            "raw lines": raw.lines,
            "raw rehash": raw.rehash,
            "raw parse": raw.parse,
        }
        for phase, seconds in rounds.items():
            best[phase] = min(seconds, best.get(phase, seconds))
    return best


def _add_reads(report: Report, name: str, n: int, s: dict[str, float]) -> None:
    lines, chain, parse = (
        "scan + JSON lines to a null sink",
        "scan + SHA-256 chain",
        "scan + json.loads",
    )
    for limit, phase in ((lines, "raw lines"), (chain, "raw rehash"), (parse, "raw parse")):
        report.raw[f"{name}: {limit}"] = n / s[phase]
    report.add(
        name,
        Figure(
            "replay (`liaison ledger replay` to a null sink)",
            n / s["replay"],
            lines,
            n / s["raw lines"],
            REPLAY_TARGET,
        ),
    )
    report.add(
        name,
        Figure(
            "verify (SqlLedger.verify)", n / s["verify"], chain, n / s["raw rehash"], REPLAY_TARGET
        ),
    )
    report.add(
        name,
        Figure(
            "replay + verify: N / (t replay + t verify)",
            n / (s["replay"] + s["verify"]),
            "both raw scans, same formula",
            n / (s["raw lines"] + s["raw rehash"]),
        ),
    )
    report.add(
        name,
        Figure(
            "entries parsed (SqlLedger.entries: trail, stats)",
            n / s["entries"],
            parse,
            n / s["raw parse"],
        ),
    )


async def _create_schema(url: str) -> None:
    ledger = SqlLedger(create_engine(url))
    try:
        await ledger.create_schema()
    finally:
        await ledger.close()


def _settle() -> None:
    """Flush dirty pages (the server's AOF, the last phase's writes) before a timed SQL phase."""
    os.sync()


def main(argv: list[str] | None = None) -> int:
    """Command line: run, print the table, write it to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m bench ledger", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events (default 20000)")
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway cluster")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--no-out", action="store_true", help="print only")
    parser.add_argument("--repeat", type=int, default=3, help="raw limits: best of (default 3)")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args.events, postgres=args.postgres, repeat=args.repeat))
    sys.stdout.write(render(report))
    if not args.no_out:
        write(report, args.out)
        print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
