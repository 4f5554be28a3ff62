"""Profile the ledger's product path (broker → SqlLedger on SQLite).

``python -m bench.tools.profile_ledger [--events N] [--phase consume|replay|verify|entries]
[--out FILE]`` profiles one phase (consume: broker start until every event is
recorded) with pyinstrument, which is not a dependency (``pip install pyinstrument``).
``--no-profiler`` runs the same phase bare, to sample it from outside::

    py-spy record --threads --format raw -o spy.txt -- python -m bench.tools.profile_ledger --no-profiler
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.support import product
from bench.support.payloads import build, out_of_gc
from services.core.redis_server import EmbeddedRedis
from services.ledger.engine import create_engine
from services.ledger.signing import load_or_create_signer
from services.ledger.store import SqlLedger

PHASES = {"replay": product.replay, "verify": product.verify, "entries": product.entries}


def _profiler(interval: float | None) -> Any:
    if interval is None:
        return None
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("pyinstrument is missing: .venv/bin/pip install pyinstrument") from None
    return Profiler(interval=interval, async_mode="disabled")


async def profile(events: int, interval: float | None, phase: str = "consume") -> tuple[float, str]:
    """Per second of one phase (consume, replay, verify or entries), and pyinstrument's report of it
    ("" without a profiler); the phases before it run unprofiled."""
    profiler = _profiler(interval)
    payloads = build(events)
    with (
        tempfile.TemporaryDirectory(prefix="liaison-prof-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as server,
        out_of_gc(),
    ):
        redis = Redis.from_url(server.url)
        ledger = SqlLedger(
            create_engine(f"sqlite+aiosqlite:///{tmp}/ledger.sqlite3"),
            load_or_create_signer(Path(tmp) / "ledger-key.pem"),  # verify needs its checkpoints
        )
        try:
            await ledger.create_schema()
            await product.reset_streams(redis)
            await product.publish(redis, payloads.events)
            if profiler is not None and phase == "consume":
                profiler.start()
            seconds = await product.consume(server.url, redis, ledger, events)
            if phase != "consume":
                if profiler is not None:
                    profiler.start()
                seconds = (await PHASES[phase](ledger))[0]
        finally:
            if profiler is not None and profiler.is_running:
                profiler.stop()
            await ledger.close()
            await redis.aclose()
    if profiler is None:
        return events / seconds, ""
    return events / seconds, str(profiler.output_text(unicode=True, color=False, show_all=True))


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.tools.profile_ledger")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--interval", type=float, default=0.001, help="sampling interval, s")
    parser.add_argument("--phase", choices=["consume", *PHASES], default="consume")
    parser.add_argument("--no-profiler", action="store_true", help="run bare, for py-spy")
    parser.add_argument("--out", type=Path, help="write the report here too")
    args = parser.parse_args(argv)
    interval = None if args.no_profiler else args.interval
    rate, text = asyncio.run(profile(args.events, interval, args.phase))
    report = f"# {args.phase}: {args.events:,} entries, {rate:,.0f} per second\n{text}"
    sys.stdout.write(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
